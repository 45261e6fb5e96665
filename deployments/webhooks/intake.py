"""A request to an app's webhook URL as plain values, and the answer to it.

The view (`views.github_webhook`, one request through Django) and the ASGI intake
(`koyra/serial_asgi.py`, every request that arrived while the previous ones were handled, at
once) both answer through `answer_all`, so a request gets the same answer either way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apps.models import App
from deployments.webhooks import services as webhook_services
from deployments.webhooks.models import RefusedDeliveries, WebhookDelivery
from secrets_vault.crypto import VaultError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    name: str  # the app's name, from the URL
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case
    body: bytes | None = b""  # None: over MAX_BODY_BYTES, not read
    remote_addr: str | None = None

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


@dataclass(frozen=True)
class Answer:
    status: int
    data: dict[str, Any]


def answer_all(requests: Sequence[Request]) -> list[Answer]:
    """The answers to `requests`, in their order. Each is checked on its own (its app, its
    size, its signature, before anything is recorded); the verified ones are recorded
    together (`webhook_receive_many`)."""
    names = {r.name for r in requests}
    # .order_by(): unordered, as a dict needs it (App's default ordering costs ~0.15 ms a batch)
    apps = {app.name: app for app in App.objects.filter(name__in=names).order_by()}
    answers: dict[int, Answer] = {}
    verified: list[tuple[int, webhook_services.Received]] = []
    for i, r in enumerate(requests):
        app = apps.get(r.name)
        if app is None:
            answers[i] = _refuse(404, f"no app named {r.name!r}")
        elif r.body is None:
            _count_refusal(r, app, RefusedDeliveries.TOO_LARGE)
            limit = webhook_services.MAX_BODY_BYTES
            answers[i] = _refuse(413, f"the body is over {limit} bytes")
        elif (refusal := _check_signature(r, app, r.body)) is not None:
            answers[i] = refusal
        else:
            got = webhook_services.Received(
                app=app,
                event=r.header("x-github-event"),
                delivery_id=r.header("x-github-delivery"),
                payload=r.body,
                content_type=r.header("content-type"),
            )
            verified.append((i, got))
    received = webhook_services.webhook_receive_many([got for _i, got in verified])
    for (i, _got), delivery in zip(verified, received, strict=True):
        answers[i] = _answer(delivery)
    return [answers[i] for i in range(len(requests))]


def _check_signature(r: Request, app: App, body: bytes) -> Answer | None:
    """The refusal for a body without a valid X-Hub-Signature-256, or None when it is valid."""
    signature = r.headers.get("x-hub-signature-256")
    try:
        valid = webhook_services.webhook_verify(app=app, body=body, signature=signature)
    except VaultError:
        # Fail closed, but say why: a key problem on this side, not a bad signature.
        log.error("webhook for %s: its secret does not decrypt (KOYRA_FERNET_KEYS)", app.name)
        _count_refusal(r, app, RefusedDeliveries.SECRET)
        return _refuse(500, "the app's webhook secret cannot be decrypted on this server")
    if valid:
        return None
    # No delivery is recorded for an unauthenticated request (anyone can send one): it is
    # counted on the app's one RefusedDeliveries row, so the app page can say why.
    _count_refusal(r, app, RefusedDeliveries.SIGNATURE)
    log.warning(
        "webhook for %s refused: missing or wrong X-Hub-Signature-256 (delivery %r from %s)",
        app.name,
        r.header("x-github-delivery")[:100],
        r.remote_addr,
    )
    return _refuse(403, "missing or wrong X-Hub-Signature-256 signature")


def _count_refusal(r: Request, app: App, reason: str) -> None:
    webhook_services.webhook_refused(
        app=app,
        reason=reason,
        event=r.header("x-github-event"),
        delivery_id=r.header("x-github-delivery"),
    )


def _answer(delivery: WebhookDelivery) -> Answer:
    if delivery.outcome == WebhookDelivery.ACCEPTED:
        return Answer(202, {"status": "queued", "deploy": delivery.deploy_id})
    if delivery.outcome == WebhookDelivery.DUPLICATE:
        return Answer(200, {"status": "duplicate"})
    if delivery.outcome == WebhookDelivery.REFUSED:
        return _refuse(400, delivery.reason)
    if delivery.event == "ping":
        return Answer(200, {"status": "pong"})
    return Answer(200, {"status": "ignored", "reason": delivery.reason})


def _refuse(status: int, reason: str) -> Answer:
    return Answer(status, {"status": "refused", "reason": reason})
