"""POST /webhooks/github/<app>/: GitHub's push and workflow_run deliveries, JSON or form-encoded.

Through `koyra.asgi` (daphne) these requests are answered by `koyra/serial_asgi.py`, several
at once; this view answers one request that came through Django (its test client, WSGI).
Both answer through `intake.answer_all`.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from deployments.webhooks import intake
from deployments.webhooks import services as webhook_services


# No CSRF token: GitHub has no session here. Every request is authenticated by the HMAC
# signature of its body instead, checked before anything is recorded or queued.
@csrf_exempt
@require_POST
def github_webhook(request: HttpRequest, name: str) -> JsonResponse:
    headers = {k.lower(): v for k, v in request.headers.items()}
    one = intake.Request(name, headers, _read_body(request), request.META.get("REMOTE_ADDR"))
    answer = intake.answer_all([one])[0]
    return JsonResponse(answer.data, status=answer.status)


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
