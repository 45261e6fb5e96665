"""POST /webhooks/github/<app>/: GitHub's push and workflow_run deliveries, JSON or form-encoded."""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.models import App
from deployments.webhooks import services as webhook_services
from deployments.webhooks.models import RefusedDeliveries, WebhookDelivery
from secrets_vault.crypto import VaultError

log = logging.getLogger(__name__)


# No CSRF token: GitHub has no session here. Every request is authenticated by the HMAC
# signature of its body instead, checked before anything is recorded or queued.
@csrf_exempt
@require_POST
def github_webhook(request: HttpRequest, name: str) -> JsonResponse:
    app = App.objects.filter(name=name).first()
    if app is None:
        return _refuse(404, f"no app named {name!r}")
    body = _read_body(request)
    if body is None:
        _count_refusal(request, app, RefusedDeliveries.TOO_LARGE)
        return _refuse(413, f"the body is over {webhook_services.MAX_BODY_BYTES} bytes")
    refusal = _check_signature(request, app, body)
    if refusal is not None:
        return refusal
    delivery = webhook_services.webhook_receive(
        app=app,
        event=request.headers.get("X-GitHub-Event", ""),
        delivery_id=request.headers.get("X-GitHub-Delivery", ""),
        payload=body,
        content_type=request.headers.get("Content-Type", ""),
    )
    return _answer(delivery)


def _check_signature(request: HttpRequest, app: App, body: bytes) -> JsonResponse | None:
    """The refusal for a body without a valid X-Hub-Signature-256, or None when it is valid."""
    signature = request.headers.get("X-Hub-Signature-256")
    try:
        valid = webhook_services.webhook_verify(app=app, body=body, signature=signature)
    except VaultError:
        # Fail closed, but say why: a key problem on this side, not a bad signature.
        log.error("webhook for %s: its secret does not decrypt (KOYRA_FERNET_KEYS)", app.name)
        _count_refusal(request, app, RefusedDeliveries.SECRET)
        return _refuse(500, "the app's webhook secret cannot be decrypted on this server")
    if valid:
        return None
    # No delivery is recorded for an unauthenticated request (anyone can send one): it is
    # counted on the app's one RefusedDeliveries row, so the app page can say why.
    _count_refusal(request, app, RefusedDeliveries.SIGNATURE)
    log.warning(
        "webhook for %s refused: missing or wrong X-Hub-Signature-256 (delivery %r from %s)",
        app.name,
        request.headers.get("X-GitHub-Delivery", "")[:100],
        request.META.get("REMOTE_ADDR"),
    )
    return _refuse(403, "missing or wrong X-Hub-Signature-256 signature")


def _count_refusal(request: HttpRequest, app: App, reason: str) -> None:
    webhook_services.webhook_refused(
        app=app,
        reason=reason,
        event=request.headers.get("X-GitHub-Event", ""),
        delivery_id=request.headers.get("X-GitHub-Delivery", ""),
    )


def _read_body(request: HttpRequest) -> bytes | None:
    """The raw body, or None when it is over the limit.

    Read from the stream rather than `request.body`, which applies the site-wide
    DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) and would answer 400 to a large but legitimate
    push. The declared length is checked first so an oversized body is never read; the
    read itself stops one byte past the limit in case the declared length was wrong.
    """
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > webhook_services.MAX_BODY_BYTES:
        return None
    body = request.read(webhook_services.MAX_BODY_BYTES + 1)
    return None if len(body) > webhook_services.MAX_BODY_BYTES else body


def _answer(delivery: WebhookDelivery) -> JsonResponse:
    if delivery.outcome == WebhookDelivery.ACCEPTED:
        return JsonResponse({"status": "queued", "deploy": delivery.deploy_id}, status=202)
    if delivery.outcome == WebhookDelivery.DUPLICATE:
        return JsonResponse({"status": "duplicate"})
    if delivery.outcome == WebhookDelivery.REFUSED:
        return _refuse(400, delivery.reason)
    if delivery.event == "ping":
        return JsonResponse({"status": "pong"})
    return JsonResponse({"status": "ignored", "reason": delivery.reason})


def _refuse(status: int, reason: str) -> JsonResponse:
    return JsonResponse({"status": "refused", "reason": reason}, status=status)
