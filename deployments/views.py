from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from deployments.models import Deploy, LogLine


def _get_deploy_for_user(user, pk: int) -> Deploy:
    deploy = Deploy.objects.select_related("app", "image").filter(pk=pk).first()
    if deploy is None or not deploy.app.visible_to(user):
        raise Http404("No such deploy")
    return deploy


@require_GET
@login_required
def deploy_detail(request, pk: int):
    deploy = _get_deploy_for_user(request.user, pk)
    return render(
        request,
        "deployments/detail.html",
        {"deploy": deploy, "lines": deploy.log_lines.all(), "stages": deploy.stage_seconds()},
    )


def _sse(event: str, data: dict, seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


@require_GET
@login_required
def deploy_log_stream(request, pk: int):
    """The deploy log as Server-Sent Events: the backlog, then new lines as they are stored,
    from Last-Event-ID on a reconnect, until the deploy finishes."""
    deploy = _get_deploy_for_user(request.user, pk)
    start = request.headers.get("Last-Event-ID") or request.GET.get("after") or "0"
    after = int(start) if start.isdigit() else 0

    async def events():
        seq = after
        while True:
            lines, status = await sync_to_async(_since)(deploy.pk, seq)
            for s, text in lines:
                seq = s
                yield _sse("line", {"seq": s, "text": text}, s)
            if status in Deploy.FINISHED and not lines:
                yield _sse("status", {"status": status})
                return
            if not lines:
                yield ": keep-alive\n\n"
                await asyncio.sleep(0.5)

    resp = StreamingHttpResponse(events(), content_type="text/event-stream")
    resp["Cache-Control"] = "no-cache"
    resp["X-Accel-Buffering"] = "no"
    return resp


def _since(deploy_id: int, seq: int) -> tuple[list[tuple[int, str]], str]:
    status = Deploy.objects.values_list("status", flat=True).get(pk=deploy_id)
    lines = list(
        LogLine.objects.filter(deploy_id=deploy_id, seq__gt=seq)
        .order_by("seq")
        .values_list("seq", "text")[:500]
    )
    return lines, status
