"""GitHub webhooks: verify a delivery, record every attempt, and queue the deploy it asks for
(once per delivery id; for CI, once every workflow the app waits for succeeded)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps import services as app_services
from apps.models import App
from deployments import services as deploy_services
from deployments.models import Deploy
from deployments.webhooks import github
from deployments.webhooks.models import RefusedDeliveries, WebhookDelivery, WorkflowPass

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
    event = (event or "")[:50]
    if not _DELIVERY_ID_RE.fullmatch(delivery_id or ""):
        reason = "no usable X-GitHub-Delivery header, so a redelivery could not be told apart"
        return _record(app=app, event=event, outcome=WebhookDelivery.REFUSED, reason=reason)
    decision, outcome, reason = _judge(app=app, event=event, body=payload, kind=content_type)
    commit = decision.commit if decision is not None else ""
    queues = outcome == WebhookDelivery.ACCEPTED and decision is not None
    # One that would queue nothing looks for its accepted original at once; one that would
    # queue a deploy looks once it holds the app's row, where the original cannot race it.
    if not queues and _was_accepted(delivery_id):
        return _duplicate(app=app, event=event, delivery_id=delivery_id, commit=commit)
    with transaction.atomic():
        if queues and decision is not None:
            App.objects.select_for_update(no_key=True).only("pk").get(pk=app.pk)
            if _was_accepted(delivery_id):  # the one we waited for accepted it
                return _duplicate(app=app, event=event, delivery_id=delivery_id, commit=commit)
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
            return _duplicate(app=app, event=event, delivery_id=delivery_id, commit=commit)
    log.info("webhook %s for %s: %s (%s)", delivery_id, app.name, outcome, reason)
    return delivery


def _judge(
    *, app: App, event: str, body: bytes, kind: str
) -> tuple[github.Decision | None, str, str]:
    """What GitHub's rules say about the delivery: its decision, outcome and reason."""
    try:
        decision = github.decide(
            event=event,
            payload=github.load(body, kind),
            branch=app.branch,
            trigger=app.trigger,
            repo_full_name=app.repo_full_name,
        )
    except github.PayloadError as exc:
        return None, WebhookDelivery.REFUSED, f"malformed payload: {exc}"
    outcome = WebhookDelivery.ACCEPTED if decision.deploy else WebhookDelivery.IGNORED
    return decision, outcome, decision.reason


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


def _record(
    *,
    app: App,
    event: str,
    outcome: str,
    reason: str,
    commit: str = "",
    delivery_id: str | None = None,
    deploy: Deploy | None = None,
) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        app=app,
        deploy=deploy,
        delivery_id=delivery_id,
        event=event,
        commit=commit,
        outcome=outcome,
        reason=reason[:500],
    )


def _duplicate(*, app: App, event: str, delivery_id: str, commit: str) -> WebhookDelivery:
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
