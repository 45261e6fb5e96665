"""GitHub webhooks: verify a delivery, record it once, and queue the deploy it asks for."""

from __future__ import annotations

import logging
import re

from django.db import IntegrityError, transaction

from apps import services as app_services
from apps.models import App
from deployments import services as deploy_services
from deployments.webhooks import github
from deployments.webhooks.models import WebhookDelivery

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024
# GitHub's delivery ids are GUIDs; anything printable and short is accepted from other senders.
_DELIVERY_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def webhook_verify(*, app: App, body: bytes, signature: str | None) -> bool:
    """Whether the raw `body` carries a valid X-Hub-Signature-256 for the app's secret."""
    return github.signature_is_valid(app_services.app_webhook_secret(app=app), body, signature)


def webhook_receive(*, app: App, event: str, delivery_id: str, payload: bytes) -> WebhookDelivery:
    """Handle one verified delivery (`payload` is its raw body) and return its record.

    The record is created under the unique X-GitHub-Delivery id in the same transaction as
    the deploy: a redelivery, even one racing the original, hits the constraint and is
    recorded as a duplicate that queues nothing. Never a check-then-insert.
    """
    event = (event or "")[:50]
    if not _DELIVERY_ID_RE.fullmatch(delivery_id or ""):
        reason = "no usable X-GitHub-Delivery header, so a redelivery could not be told apart"
        return _record(app=app, event=event, outcome=WebhookDelivery.REFUSED, reason=reason)
    decision: github.Decision | None = None
    try:
        decision = github.decide(
            event=event,
            payload=github.load(payload),
            branch=app.branch,
            trigger=app.trigger,
            repo_full_name=app.repo_full_name,
        )
    except github.PayloadError as exc:
        outcome, commit, reason = WebhookDelivery.REFUSED, "", f"malformed payload: {exc}"
    else:
        outcome = WebhookDelivery.ACCEPTED if decision.deploy else WebhookDelivery.IGNORED
        commit, reason = decision.commit, decision.reason
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: the outer transaction survives the clash
                delivery = _record(
                    app=app,
                    event=event,
                    outcome=outcome,
                    reason=reason,
                    commit=commit,
                    delivery_id=delivery_id,
                )
        except IntegrityError:
            return _duplicate(app=app, event=event, delivery_id=delivery_id, commit=commit)
        if decision is not None and decision.deploy:
            # deploy_create enqueues on commit: the job never sees an uncommitted row.
            delivery.deploy = deploy_services.deploy_create(
                app=app, commit=decision.commit, trigger=event
            )
            delivery.save(update_fields=["deploy"])
    log.info("webhook %s for %s: %s (%s)", delivery_id, app.name, outcome, reason)
    return delivery


def _record(
    *,
    app: App,
    event: str,
    outcome: str,
    reason: str,
    commit: str = "",
    delivery_id: str | None = None,
) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        app=app,
        delivery_id=delivery_id,
        event=event,
        commit=commit,
        outcome=outcome,
        reason=reason[:500],
    )


def _duplicate(*, app: App, event: str, delivery_id: str, commit: str) -> WebhookDelivery:
    # Listed too (without the id, which belongs to the first one) so a redelivery that
    # "did nothing" explains itself.
    first = WebhookDelivery.objects.filter(delivery_id=delivery_id, app=app).first()
    seen = ""
    if first is not None:  # another app's delivery is none of this app's business
        seen = f", first received {first.received:%Y-%m-%d %H:%M:%S} UTC ({first.outcome})"
    reason = f"redelivery of {delivery_id}{seen}: nothing queued"
    log.info("webhook %s for %s: duplicate", delivery_id, app.name)
    return _record(
        app=app, event=event, outcome=WebhookDelivery.DUPLICATE, reason=reason, commit=commit
    )
