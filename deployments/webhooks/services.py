"""GitHub webhooks: verify a delivery, record every attempt, and queue the deploy it asks for
(once per delivery id; for CI, once every workflow the app waits for succeeded)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps import services as app_services
from apps.models import App
from deployments import services as deploy_services
from deployments.models import Deploy
from deployments.webhooks import github
from deployments.webhooks.models import RefusedDeliveries, WebhookDelivery, WorkflowPass
from koyra import db

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024
# GitHub's delivery ids are GUIDs; anything printable and short is accepted from other senders.
_DELIVERY_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,100}")
_EVENT_RE = re.compile(r"[a-z_]{1,50}")  # GitHub's event names: push, workflow_run, ping
REFUSAL_WINDOW = timedelta(hours=24)


def webhook_verify(*, app: App, body: bytes, signature: str | None) -> bool:
    """Whether the raw `body` carries a valid X-Hub-Signature-256 for the app's secret."""
    return github.signature_is_valid(app_services.app_webhook_secret(app=app), body, signature)


def webhook_refused(*, app: App, reason: str, event: str = "", delivery_id: str = "") -> None:
    """Count one request refused before anything was recorded (RefusedDeliveries): one row
    per app updated in place, so a flood of unsigned requests writes no new rows. The event
    and delivery id are kept only when they look like GitHub's; nothing else of the request."""
    now = timezone.now()
    last = {
        "last": now,
        "last_reason": reason,
        "last_event": event if _EVENT_RE.fullmatch(event or "") else "",
        "last_delivery_id": delivery_id if _DELIVERY_ID_RE.fullmatch(delivery_id or "") else "",
    }
    counted = RefusedDeliveries.objects.filter(app=app, since__gt=now - REFUSAL_WINDOW)
    if counted.update(count=F("count") + 1, **last):
        return
    try:  # the first refusal, or the first after a quiet day: a new window
        with transaction.atomic():
            RefusedDeliveries.objects.update_or_create(
                app=app, defaults={"count": 1, "since": now, **last}
            )
    except IntegrityError:  # a concurrent refusal created the row first: count on it
        RefusedDeliveries.objects.filter(app=app).update(count=F("count") + 1, **last)


def webhook_refusals(*, app: App) -> RefusedDeliveries | None:
    """The app's refusals when the last was within a day (its `count` is of those since
    `since`, a day at most before the last), None when there were none."""
    recent = timezone.now() - REFUSAL_WINDOW
    return RefusedDeliveries.objects.filter(app=app, last__gt=recent, count__gt=0).first()


@dataclass(frozen=True)
class Received:
    """One delivery whose signature was checked: its app, headers and raw body."""

    app: App
    event: str
    delivery_id: str
    payload: bytes
    content_type: str = ""


@dataclass(frozen=True)
class _Judged:
    index: int  # its place in the batch
    got: Received
    event: str
    decision: github.Decision | None
    outcome: str
    reason: str

    @property
    def commit(self) -> str:
        return self.decision.commit if self.decision is not None else ""

    @property
    def queues(self) -> bool:
        return self.outcome == WebhookDelivery.ACCEPTED and self.decision is not None

    @property
    def batched(self) -> bool:
        """A push that queues a deploy: recorded with the others of its batch."""
        return self.queues and self.event == "push"


def webhook_receive(
    *, app: App, event: str, delivery_id: str, payload: bytes, content_type: str = ""
) -> WebhookDelivery:
    """Handle one verified delivery (`payload` is its raw body, sent as `content_type`) and
    return its record.

    X-GitHub-Delivery is unique per *deploy*: a redelivery of a delivery that queued one is a
    duplicate that queues nothing. One that was ignored or refused is judged again (GitHub's
    "Redeliver" is how a user retries after fixing the app's branch, trigger or repository),
    each attempt a row of its own. Deliveries that would queue a deploy take turns on the
    app's row, and a unique index on accepted delivery ids backs that up: two redeliveries
    racing each other never queue two deploys.
    """
    got = Received(app, event, delivery_id, payload, content_type)
    return webhook_receive_many([got])[0]


def webhook_receive_many(deliveries: Sequence[Received]) -> list[WebhookDelivery]:
    """`webhook_receive` for each of several deliveries handled together (a burst), their
    records in the same order.

    The pushes that queue a deploy are recorded together: their apps' rows taken once, one
    look for accepted originals, one INSERT of deploys and one of deliveries in one
    transaction, one enqueue once it is committed (at 200 deliveries a second, a transaction
    and a dozen statements each was more than one core: BENCHMARKS.md). Any other delivery
    (ignored, refused, a workflow run, which waits for its workflows) is handled on its own.
    """
    judged = [_judge(i, got) for i, got in enumerate(deliveries)]
    records = _accept_pushes([j for j in judged if j.batched])
    for j in judged:
        if j.index not in records:
            records[j.index] = _receive_one(j)
    return [records[i] for i in range(len(deliveries))]


def _accept_pushes(pushes: list[_Judged]) -> dict[int, WebhookDelivery]:
    """Record pushes that queue a deploy, each with its deploy, in one transaction.

    No look for an accepted original first: a redelivery of an accepted delivery (rare, and
    GitHub's ids are unique otherwise) is caught by the unique index on accepted delivery
    ids, which rolls the whole batch back; its deliveries are then recorded one at a time,
    where a clash makes that one a duplicate and the others go through as before."""
    if not pushes:
        return {}
    try:
        with transaction.atomic():
            deploys = deploy_services.deploy_create_many(
                commits=[(j.got.app, j.commit) for j in pushes], trigger="push"
            )
            rows = db.insert_many(
                [
                    _delivery(
                        app=j.got.app,
                        event=j.event,
                        outcome=WebhookDelivery.ACCEPTED,
                        reason=j.reason,
                        commit=j.commit,
                        delivery_id=j.got.delivery_id,
                        deploy=deploy,
                    )
                    for j, deploy in zip(pushes, deploys, strict=True)
                ]
            )
    except IntegrityError:
        if len(pushes) > 1:
            return {j.index: _accept_pushes([j])[j.index] for j in pushes}
        j = pushes[0]
        return {j.index: _duplicate(j)}
    for j, row in zip(pushes, rows, strict=True):
        log.info(
            "webhook %s for %s: %s (%s)", row.delivery_id, j.got.app.name, row.outcome, row.reason
        )
    return {j.index: row for j, row in zip(pushes, rows, strict=True)}


def _receive_one(j: _Judged) -> WebhookDelivery:
    app, event, delivery_id = j.got.app, j.event, j.got.delivery_id
    if not _DELIVERY_ID_RE.fullmatch(delivery_id or ""):
        reason = "no usable X-GitHub-Delivery header, so a redelivery could not be told apart"
        return _record(app=app, event=event, outcome=WebhookDelivery.REFUSED, reason=reason)
    outcome, reason, commit, decision = j.outcome, j.reason, j.commit, j.decision
    # One that would queue nothing looks for its accepted original at once; one that would
    # queue a deploy looks once it holds the app's row, where the original cannot race it.
    if not j.queues and _was_accepted(delivery_id):
        return _duplicate(j)
    with transaction.atomic():
        if j.queues and decision is not None:
            deploy_services.lock_apps(pks={app.pk})
            if _was_accepted(delivery_id):  # the one we waited for accepted it
                return _duplicate(j)
            if event == "workflow_run":
                deploy, reason = _gate(app=app, decision=decision)
                outcome = WebhookDelivery.ACCEPTED if deploy else WebhookDelivery.IGNORED
        try:
            with transaction.atomic():  # a savepoint: the outer transaction survives the clash
                # deploy_create enqueues on commit: the job never sees an uncommitted row, and
                # a clash rolls the deploy back with the savepoint, its enqueue with it.
                queued = None
                if outcome == WebhookDelivery.ACCEPTED:
                    queued = deploy_services.deploy_create(app=app, commit=commit, trigger=event)
                delivery = _record(
                    app=app,
                    event=event,
                    outcome=outcome,
                    reason=reason,
                    commit=commit,
                    delivery_id=delivery_id,
                    deploy=queued,
                )
        except IntegrityError:
            return _duplicate(j)
    log.info("webhook %s for %s: %s (%s)", delivery_id, app.name, outcome, reason)
    return delivery


def _judge(index: int, got: Received) -> _Judged:
    """What GitHub's rules say about the delivery: its decision, outcome and reason."""
    event = (got.event or "")[:50]
    if not _DELIVERY_ID_RE.fullmatch(got.delivery_id or ""):  # refused by _receive_one
        return _Judged(index, got, event, None, WebhookDelivery.REFUSED, "")
    app = got.app
    try:
        decision = github.decide(
            event=event,
            payload=github.load(got.payload, got.content_type),
            branch=app.branch,
            trigger=app.trigger,
            repo_full_name=app.repo_full_name,
        )
    except github.PayloadError as exc:
        return _Judged(
            index, got, event, None, WebhookDelivery.REFUSED, f"malformed payload: {exc}"
        )
    outcome = WebhookDelivery.ACCEPTED if decision.deploy else WebhookDelivery.IGNORED
    return _Judged(index, got, event, decision, outcome, decision.reason)


def _gate(*, app: App, decision: github.Decision) -> tuple[bool, str]:
    """Whether a successful workflow run deploys its commit now, and the reason either way.

    With the app's `workflows` only the named ones count, and the commit deploys once every
    one of them has succeeded for it (in any order, each recorded as a WorkflowPass);
    without, the first success deploys. Once: a commit with a deploy queued, running or live
    is not queued again by the next workflow's success. Called under the app's row lock.
    """
    sha, names, reason = decision.commit, app.workflows, decision.reason
    if names:
        if decision.workflow not in names:
            return False, (
                f"{reason}, but this app waits for the workflows {', '.join(names)} "
                f"(setting workflows), and {decision.workflow or 'this run'} is not one of them"
            )
        WorkflowPass.objects.get_or_create(app=app, commit=sha, workflow=decision.workflow)
        passed = set(
            WorkflowPass.objects.filter(app=app, commit=sha).values_list("workflow", flat=True)
        )
        missing = [name for name in names if name not in passed]
        if missing:
            return False, f"{reason}; waiting for {', '.join(missing)} to succeed for {sha[:12]}"
        reason = f"{reason}; every workflow it waits for succeeded for {sha[:12]}"
    pending = app.deploys.filter(
        commit=sha, status__in=(*Deploy.PENDING, Deploy.Status.LIVE)
    ).first()
    if pending is not None:
        return False, f"{reason}, but deploy #{pending.pk} of it is {pending.status} already"
    return True, reason


def _was_accepted(delivery_id: str) -> bool:
    return WebhookDelivery.objects.filter(
        delivery_id=delivery_id, outcome=WebhookDelivery.ACCEPTED
    ).exists()


def _accepted(delivery_id: str) -> WebhookDelivery | None:
    return WebhookDelivery.objects.filter(
        delivery_id=delivery_id, outcome=WebhookDelivery.ACCEPTED
    ).first()


def _record(**fields: Any) -> WebhookDelivery:
    delivery = _delivery(**fields)
    delivery.save(force_insert=True)
    return delivery


def _delivery(
    *,
    app: App,
    event: str,
    outcome: str,
    reason: str,
    commit: str = "",
    delivery_id: str | None = None,
    deploy: Deploy | None = None,
) -> WebhookDelivery:
    """A delivery's row, not saved yet (`_record` saves one; a batch inserts them together)."""
    return WebhookDelivery(
        app=app,
        deploy=deploy,
        delivery_id=delivery_id,
        event=event,
        commit=commit,
        outcome=outcome,
        reason=reason[:500],
    )


def _duplicate(j: _Judged) -> WebhookDelivery:
    app, event, delivery_id, commit = j.got.app, j.event, j.got.delivery_id, j.commit
    # Listed too (without the id, which belongs to the first one) so a redelivery that
    # "did nothing" explains itself.
    first = _accepted(delivery_id)
    seen = ""
    if first is not None and first.app_id == app.pk:  # another app's is none of its business
        seen = f", first received {first.received:%Y-%m-%d %H:%M:%S} UTC ({first.outcome})"
    reason = f"redelivery of {delivery_id}{seen}: nothing queued"
    log.info("webhook %s for %s: duplicate", delivery_id, app.name)
    return _record(
        app=app, event=event, outcome=WebhookDelivery.DUPLICATE, reason=reason, commit=commit
    )
