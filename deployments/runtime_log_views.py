"""The app's runtime logs page and its Server-Sent Events stream (deployments.runtime_logs)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps import access, validators
from deployments import runtime_logs

TAIL_CHOICES = (50, 200, 1000)


@require_GET
@login_required
def app_logs(request, name: str):
    app = access.app_for(request.user, name, "see")
    context = {"app": app, "tails": TAIL_CHOICES, "error": None}
    try:
        context["tail"] = validators.log_tail(request.GET.get("tail"))
    except ValidationError as exc:
        context.update(tail=validators.RUNTIME_LOG_TAIL_DEFAULT, error=exc.messages[0])
    status = 400 if context["error"] else 200
    return render(request, "deployments/runtime_logs.html", context, status=status)


@require_GET
@login_required
def app_log_stream(request, name: str):
    """The live service's output as Server-Sent Events (`curl -N` works): `line` events
    {task, text} with the engine's timestamp as id, and `notice` events {text}."""
    app = access.app_for(request.user, name, "see")
    try:
        tail = validators.log_tail(request.GET.get("tail"))
    except ValidationError as exc:
        return HttpResponse(exc.messages[0], status=400, content_type="text/plain")
    last = request.headers.get("Last-Event-ID")
    since = validators.log_since(last)
    stream = runtime_logs.events(app.pk, request.user.pk, tail=tail, last_id=last, since=since)
    resp = StreamingHttpResponse(stream, content_type="text/event-stream")
    resp["Cache-Control"] = "no-cache"
    resp["X-Accel-Buffering"] = "no"
    return resp
