"""Deploy workflows around the pipeline: create and enqueue, cancel, redeploy, roll back, and
the worker's sweep. Running one deploy is `pipeline.deploy_run`, called by the worker's job."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue

from apps.models import App
from apps.validators import validate_commit
from deployments import heartbeat, jobs, selectors
from deployments.models import Deploy
from deployments.transitions import transition
from koyra import db

log = logging.getLogger(__name__)
Status = Deploy.Status


# --- Creating and queueing ------------------------------------------------------------------


def deploy_create(
    *, app: App, commit: str = "", trigger: str = "manual", source: Deploy | None = None
) -> Deploy:
    """The Deploy row first; the job is enqueued once the row is committed. A user's deploy
    (manual, redeploy, rollback) supersedes the app's older queued deploys: never two builds
    of stale commits in a row. A webhook's supersedes nothing: its commit may be older than
    theirs (CI runs finish out of order), which git tells once it is cloned (ordering.py)."""
    if commit:
        validate_commit(commit)
    with transaction.atomic():
        # Creates for one app take turns on its row, so each sees (and supersedes) the queued
        # deploy of the one before; two asked for at once would otherwise both stay queued (a
        # row lock SQLite never needed). NO KEY: rows that only point at the app (a webhook
        # delivery inserted first) do not block it.
        lock_apps(pks={app.pk})
        deploy = Deploy.objects.create(
            app=app,
            commit=commit,
            trigger=trigger,
            source=source,
            # A redeploy or rollback runs its source's commit: the same words in the history.
            commit_message=source.commit_message if source else "",
            commit_author=source.commit_author if source else "",
        )
        older = app.deploys.filter(status=Status.QUEUED).exclude(pk=deploy.pk)
        for stale in older if trigger not in Deploy.WEBHOOK_TRIGGERS else ():
            transition(stale, Status.SUPERSEDED, by=deploy)
        transaction.on_commit(lambda: _defer([deploy.pk]) or deploy_enqueue(deploy_id=deploy.pk))
    return deploy


def lock_apps(*, pks: Iterable[int]) -> None:
    """Take the apps' rows until the transaction ends, in one statement and in pk order: two
    batches never wait on each other in a circle. NO KEY: rows that only point at an app (a
    webhook delivery inserted first) do not wait for it. Nothing to do on SQLite, whose
    write transactions take turns on the whole database (Django would run the query and
    ignore FOR UPDATE)."""
    if not connection.features.has_select_for_update:  # SQLite: nothing to take
        return
    ordered = sorted(set(pks))
    rows = App.objects.select_for_update(no_key=True).filter(pk__in=ordered).order_by("pk")
    if len(rows.values_list("pk", flat=True)) != len(ordered):
        raise App.DoesNotExist("an app was deleted while its deploy was being created")


def deploy_create_many(*, commits: Sequence[tuple[App, str]], trigger: str) -> list[Deploy]:
    """Deploys of (app, commit) pairs for webhook deliveries handled together, each as
    `deploy_create` makes it, with one INSERT and one enqueue once committed. Webhook
    triggers only: theirs supersede nothing, so creating them together changes nothing."""
    if trigger not in Deploy.WEBHOOK_TRIGGERS:
        raise ValueError(f"deploy_create_many makes webhook deploys, not {trigger!r} ones")
    for _app, commit in commits:
        if commit:
            validate_commit(commit)
    if not commits:
        return []
    with transaction.atomic():
        # For the same reason deploy_create takes its app's row.
        lock_apps(pks={app.pk for app, _commit in commits})
        deploys = db.insert_many(
            [Deploy(app=app, commit=commit, trigger=trigger) for app, commit in commits]
        )
        ids = [deploy.pk for deploy in deploys]
        transaction.on_commit(lambda: _defer(ids) or deploy_enqueue_many(deploy_ids=ids))
    return deploys


_after = threading.local()


@contextlib.contextmanager
def enqueue_after() -> Iterator[None]:
    """Deploys this thread commits inside the block are handed to the worker when it ends,
    in one enqueue, instead of at each commit. The webhook intake answers GitHub first: the
    committed row is the record, the job only transport (RQ made 0.6 ms of the GIL a job,
    which a batch's every answer waited for; BENCHMARKS.md). Whatever fails here the worker's
    sweep enqueues."""
    ids: list[int] = []
    outer, _after.ids = getattr(_after, "ids", None), ids
    try:
        yield
    finally:
        _after.ids = outer
        deploy_enqueue_many(deploy_ids=ids)


def _defer(ids: list[int]) -> bool:
    """On commit (a deploy rolled back is never handed over): inside enqueue_after, keep
    `ids` for the end of the block and say so; else False, to be handed over now."""
    later = getattr(_after, "ids", None)
    if later is None:
        return False
    later.extend(ids)
    return True


_queues: dict[str, Queue] = {}
# After Redis could not be reached, deploys are left to the worker's sweep (the row is the
# queue of record) for this long instead of each paying the connect timeout: with Redis
# dropping packets, every webhook delivery (handled one at a time) would wait 2 s.
REDIS_RETRY_SECONDS = 5.0
_redis_down_until: dict[str, float] = {}


def _queue_key() -> str:
    """The `deploys` queue's configuration (tests change it), as a key."""
    return repr(settings.RQ_QUEUES["deploys"])


def _deploy_queue() -> Queue:
    """The `deploys` queue, one per process (and per configuration, which tests change):
    django_rq makes a new Redis client, so a new connection, on every get_queue() - a cost
    every webhook paid. redis-py's pool is thread-safe and starts afresh after a fork."""
    key = _queue_key()
    queue = _queues.get(key)
    if queue is None:
        queue = _queues[key] = django_rq.get_queue("deploys")
    return queue


def deploy_enqueue(*, deploy_id: int) -> bool:
    """Hand a queued deploy to the worker. Redis being down is not an error here: the row is
    the queue of record, and the worker's sweep enqueues it once Redis is back."""
    return deploy_id in deploy_enqueue_many(deploy_ids=[deploy_id])


def deploy_enqueue_many(*, deploy_ids: Sequence[int]) -> set[int]:
    """`deploy_enqueue` for several deploys at once (a batch of webhook deliveries): one claim
    and one Redis round trip for all of them. The ids it handed to the worker."""
    if not deploy_ids:
        return set()
    key = _queue_key()
    if time.monotonic() < _redis_down_until.get(key, 0.0):  # no connect timeout per call
        for deploy_id in deploy_ids:
            log.warning(
                "deploy %s stays queued until Redis is reachable (it was not, just now)",
                deploy_id,
            )
        return set()
    claimed = _claim(deploy_ids)
    if not claimed:
        return set()
    queue = _deploy_queue()
    jobs_data = [
        Queue.prepare_data(
            jobs.run_deploy,
            (deploy_id,),
            job_id=f"deploy-{deploy_id}",
            timeout=settings.KOYRA_DEPLOY_TIMEOUT + 120,
            result_ttl=3600,
            failure_ttl=86400,
        )
        for deploy_id in claimed
    ]
    try:
        queue.enqueue_many(jobs_data)
    except RedisError as exc:
        Deploy.objects.filter(pk__in=claimed).update(enqueued=None)
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
            _redis_down_until[key] = time.monotonic() + REDIS_RETRY_SECONDS
        for deploy_id in claimed:
            log.warning("deploy %s stays queued until Redis is reachable: %s", deploy_id, exc)
        return set()
    return set(claimed)


def _claim(deploy_ids: Sequence[int]) -> list[int]:
    """Mark the queued, not yet handed over deploys among `deploy_ids` as handed over, in one
    statement, and return them in their order: of two processes claiming the same deploy (a
    webhook's and the worker's sweep), exactly one gets it. UPDATE ... RETURNING, which
    SQLite (3.35+) and PostgreSQL both have and the ORM does not."""
    meta = Deploy._meta
    qn = connection.ops.quote_name
    table, pk = qn(meta.db_table), qn(str(meta.pk.column))
    enqueued = qn(str(meta.get_field("enqueued").column))
    status = qn(str(meta.get_field("status").column))
    marks = ", ".join(["%s"] * len(deploy_ids))
    # Names from the model's own metadata, values only as parameters.
    sql = (
        f"UPDATE {table} SET {enqueued} = %s WHERE {pk} IN ({marks}) "  # noqa: S608
        f"AND {status} = %s AND {enqueued} IS NULL RETURNING {pk}"
    )
    now = meta.get_field("enqueued").get_db_prep_value(timezone.now(), connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, *deploy_ids, Status.QUEUED.value])
        got = {row[0] for row in cursor.fetchall()}
    return [deploy_id for deploy_id in deploy_ids if deploy_id in got]


def deploy_sweep(
    *,
    job_exists: Callable[[int], bool] | None = None,
    running_elsewhere: Callable[[int], bool] | None = None,
) -> dict[str, int]:
    """Run by the idle worker: nothing stays building forever, nothing queued is forgotten.

    - active deploys become failed: this worker is idle, so none of them is running, unless
      another live worker holds its job (two workers by mistake must not fail each other's)
      or another process runs it (its heartbeat is fresh: a shell, a test);
    - queued deploys never handed to Redis, or whose job Redis lost, are enqueued, unless a
      process has just started running them.
    """
    unattended = Deploy.objects.exclude(heartbeat__gt=heartbeat.stale_before())
    failed = 0
    for d in unattended.filter(status__in=Deploy.ACTIVE):
        if running_elsewhere is not None and running_elsewhere(d.pk):
            continue
        if transition(
            d,
            Status.FAILED,
            reason="interrupted: the worker stopped while this deploy was running; deploy again",
        ):
            failed += 1
    enqueued = 0
    for d in unattended.filter(status=Status.QUEUED).order_by("created", "id"):
        if d.enqueued is not None and job_exists is not None and not job_exists(d.pk):
            Deploy.objects.filter(pk=d.pk).update(enqueued=None)
        if deploy_enqueue(deploy_id=d.pk):
            enqueued += 1
    return {"failed": failed, "enqueued": enqueued}


def deploy_cancel(*, app: App) -> Deploy | None:
    """Cancel the app's running deploy (its own build only) and its queued ones. The deploy
    to show: the running one, else the first queued one cancelled."""
    target = None
    for d in app.deploys.filter(status__in=Deploy.PENDING).order_by("created"):
        if deploy_cancel_one(deploy=d) and (target is None or d.status != Status.CANCELLED):
            target = d
    return target


def deploy_cancel_one(*, deploy: Deploy) -> bool:
    """Cancel `deploy` alone (its page's Cancel; the app's Cancel stops every pending one):
    queued, it never starts; running, its build stops at its next step. False when it had
    finished already, and then nothing changes. No read first: a deploy the worker starts
    between a read and the cancel would be marked cancelled while its clone runs."""
    if transition(deploy, Status.CANCELLED, queued_only=True):
        return True
    running = Deploy.objects.filter(pk=deploy.pk, status__in=Deploy.ACTIVE)
    return running.update(cancel_requested=True) == 1


def redeploy_create(*, app: App) -> Deploy:
    current = selectors.live_deploy(app)
    if current is None or not current.spec:
        raise ValidationError(f"{app.name} has no live deploy to redeploy; deploy it first.")
    return deploy_create(app=app, commit=current.commit, trigger="redeploy", source=current)


def rollback_create(*, app: App, to: Deploy | None = None) -> Deploy:
    """A new deploy that re-applies an earlier release's recorded spec (with the current
    secret values): no clone, no build."""
    stack = selectors.release_stack(app)
    if to is not None:
        if to.app_id != app.pk:
            raise ValidationError(f"Deploy #{to.pk} is not a deploy of {app.name}.")
        target = selectors.release_root(to)
        if (
            not target.spec
            or target.image is None
            or target.status not in (Status.LIVE, Status.RETIRED)
        ):
            raise ValidationError(
                f"Deploy #{to.pk} never went live, so there is nothing to roll back to."
            )
    else:
        if len(stack) < 2:
            raise ValidationError(f"{app.name} has no earlier live release to roll back to.")
        target = stack[-2]
    if target.image is not None and target.image.deleted is not None:
        raise ValidationError(
            f"The image of deploy #{target.pk} was not kept: pruned (KOYRA_KEEP_RELEASES), or "
            "not in the registry when Koyra was restored from a backup; deploy commit "
            f"{target.commit[:12]} again instead."
        )
    return deploy_create(app=app, commit=target.commit, trigger="rollback", source=target)
