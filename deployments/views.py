from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps import access
from apps.validators import log_cursor
from deployments import fragments, retention
from deployments.models import Deploy, LogLine

SSE_POLL_SECONDS = 0.5
SSE_KEEPALIVE_SECONDS = 15
SSE_BATCH = 500
# A few lines are stored just after the final status ("live: every task runs ...", the
# safety net's "!! internal error"): a stream stays open this long after `finished` for them.
SSE_GRACE = timedelta(seconds=3)
# An open stream re-checks the viewer's access this often and ends once it is gone.
SSE_ACCESS_RECHECK_SECONDS = 5.0


def _get_deploy_for_user(user, pk: int) -> Deploy:
    deploy = Deploy.objects.select_related("app", "image").filter(pk=pk).first()
    if deploy is None or not access.may(user, deploy.app, "see"):
        raise Http404("No such deploy")
    return deploy


@require_GET
@login_required
def deploy_detail(request, pk: int):
    deploy = _get_deploy_for_user(request.user, pk)
    lines = deploy.log_lines.order_by("seq").values("seq", "text")
    context = {"deploy": deploy, "lines": lines, "can": access.abilities(request.user, deploy.app)}
    return render(request, "deployments/detail.html", context)


def _sse(event: str, data: dict, seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


def _after(request) -> int:
    return log_cursor(request.headers.get("Last-Event-ID") or request.GET.get("after"))


@require_GET
@login_required
def deploy_log_stream(request, pk: int):
    """The deploy log as Server-Sent Events (`curl -N` works): the lines after Last-Event-ID
    (or ?after=), each with its seq as the event id, then new lines as they are stored, and a
    `status` event whenever the status or stages change; it ends once the deploy finished.

    It reads the database, the log's record, rather than the Channels group: a stream that
    polls cannot miss a line, and a viewer is a couple of cheap indexed queries a second."""
    deploy = _get_deploy_for_user(request.user, pk)
    resp = StreamingHttpResponse(
        _events(deploy.pk, _after(request), request.user.pk), content_type="text/event-stream"
    )
    resp["Cache-Control"] = "no-cache"
    resp["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
    return resp


async def _events(pk: int, seq: int, user_pk: int):
    yield "retry: 2000\n\n"
    shown = None
    idle = 0.0
    checked = time.monotonic()
    while True:
        if time.monotonic() - checked >= SSE_ACCESS_RECHECK_SECONDS:
            if not await sync_to_async(_may_still_see)(user_pk, pk):
                return  # access revoked (or the user deactivated): the stream ends
            checked = time.monotonic()
        polled = await sync_to_async(_poll)(pk, seq)
        if polled is None:
            return  # the deploy was deleted
        lines, state, done = polled
        for s, text in lines:
            seq = s
            yield _sse("line", {"seq": s, "text": text, "html": fragments.log_line(s, text)}, s)
        if state != shown:
            shown = state
            yield _sse("status", state)
        if len(lines) == SSE_BATCH:
            continue
        if done and not lines:
            return
        await asyncio.sleep(SSE_POLL_SECONDS)
        idle = 0.0 if lines else idle + SSE_POLL_SECONDS
        if idle >= SSE_KEEPALIVE_SECONDS:
            idle = 0.0
            yield ": keep-alive\n\n"


def _may_still_see(user_pk: int, pk: int) -> bool:
    user = get_user_model().objects.filter(pk=user_pk).first()
    deploy = Deploy.objects.select_related("app").filter(pk=pk).first()
    return user is not None and deploy is not None and access.may(user, deploy.app, "see")


def _poll(pk: int, seq: int) -> tuple[list[tuple[int, str]], dict, bool] | None:
    d = Deploy.objects.only("status", "stages", "error", "finished").filter(pk=pk).first()
    if d is None:
        return None
    lines = list(
        LogLine.objects.filter(deploy_id=pk, seq__gt=seq)
        .order_by("seq")
        .values_list("seq", "text")[:SSE_BATCH]
    )
    state = {"status": d.status, "stages": d.stages, "error": d.error}
    done = d.is_finished and (d.finished is None or timezone.now() - d.finished > SSE_GRACE)
    return lines, state, done


@require_GET
@login_required
def disk(request):
    """The disk-use card of the apps page (loaded on its own, so the list stays cheap); for
    operators only: to anyone else it is an empty answer (htmx then swaps nothing in)."""
    if not access.may_see_system(request.user):
        return HttpResponse(status=204)
    return render(request, "deployments/disk.html", {"disk": retention.disk_report()})
