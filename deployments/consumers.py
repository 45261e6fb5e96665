from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.auth import get_user_model

from apps import access
from apps.validators import log_cursor
from deployments import fragments, logstream
from deployments.models import Deploy, LogLine

REFUSED = 4403  # before accept: the handshake is refused (daphne answers 403)
FINISHED = 1000  # normal closure: the htmx ws extension does not reconnect
REVOKED = 4403  # after accept: the user lost access to the app meanwhile
# An open socket re-checks access this often (and on every status message).
ACCESS_RECHECK_SECONDS = 5.0


@database_sync_to_async
def _may_see(user, pk: int) -> bool:
    if user is None or not user.is_authenticated:
        return False
    user = get_user_model().objects.filter(pk=user.pk).first()  # fresh: is_active, roles
    deploy = Deploy.objects.select_related("app").filter(pk=pk).first()
    return user is not None and deploy is not None and access.may(user, deploy.app, "see")


@database_sync_to_async
def _lines(pk: int, after: int, upto: int | None = None) -> list[dict[str, Any]]:
    qs = LogLine.objects.filter(deploy_id=pk, seq__gt=after)
    if upto is not None:
        qs = qs.filter(seq__lte=upto)
    return [dict(row) for row in qs.order_by("seq").values("seq", "text")]


@database_sync_to_async
def _summary(user, pk: int, event: dict | None = None) -> tuple[str, bool]:
    """The summary fragment, and whether the deploy is finished."""
    deploy = Deploy.objects.select_related("app", "image").get(pk=pk)
    if event and event["status"] in Deploy.FINISHED and not deploy.is_finished:
        # Sent from inside a transaction not committed yet (a queued deploy superseded by
        # a new one): the event is the fresher word.
        deploy.status = event["status"]
        deploy.stages, deploy.error = event["stages"], event["error"]
    return fragments.summary(deploy, access.abilities(user, deploy.app)), deploy.is_finished


def _after(scope) -> int:
    values = parse_qs(scope.get("query_string", b"").decode(errors="replace")).get("after", [])
    return log_cursor(values[0] if values else None)


class DeployLogConsumer(AsyncWebsocketConsumer):
    """A deploy's log and status, live, as HTML fragments the htmx ws extension swaps in.

    Lines carry their seq and the consumer remembers the last one it sent: it joins the group
    before reading the backlog, so a line stored meanwhile arrives twice (the second is
    dropped) and never zero times. A gap in the relayed seqs (the channel layer drops
    messages for a full channel) is filled from the database, the log's record."""

    sent = 0
    watcher: asyncio.Task | None = None

    async def connect(self):
        self.pk = int(self.scope["url_route"]["kwargs"]["pk"])
        self.group = None
        if not await _may_see(self.scope.get("user"), self.pk):
            await self.close(code=REFUSED)
            return
        self.group = logstream.group_name(self.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.watcher = asyncio.ensure_future(self._watch_access())
        self.sent = _after(self.scope)
        await self._catch_up()
        if await self._send_summary():
            # It finished before this socket joined the group (the page was rendered while
            # it ran): its final status event is gone, so nothing would ever close the
            # socket and the page would say "following live" forever. Catch up and close.
            await self._catch_up()
            await self.close(code=FINISHED)

    async def disconnect(self, code):
        if self.watcher is not None:
            self.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watcher
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _watch_access(self) -> None:
        while True:
            await asyncio.sleep(ACCESS_RECHECK_SECONDS)
            if not await self._still_allowed():
                return

    async def _still_allowed(self) -> bool:
        """False (and the socket closed) once the user may no longer see the deploy."""
        if await _may_see(self.scope.get("user"), self.pk):
            return True
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
        await self.close(code=REVOKED)
        return False

    async def receive(self, text_data=None, bytes_data=None):
        pass  # nothing to say to us

    async def _catch_up(self, upto: int | None = None) -> None:
        lines = await _lines(self.pk, self.sent, upto)
        if lines:
            self.sent = lines[-1]["seq"]
            await self.send(text_data=fragments.log_append(lines))

    async def _send_summary(self, event: dict | None = None) -> bool:
        """Send the summary; True when the deploy is finished."""
        html, finished = await _summary(self.scope.get("user"), self.pk, event)
        await self.send(text_data=html)
        return finished

    async def log_lines(self, event):
        """Consecutive lines stored together, the first numbered `first`
        (logstream.DeployLog.flush)."""
        first, texts = event["first"], event["texts"]
        last = first + len(texts) - 1
        if last <= self.sent:
            return
        if first > self.sent + 1:
            await self._catch_up(upto=last)
            return
        fresh = texts[self.sent + 1 - first :]
        self.sent = last
        await self.send(text_data=fragments.log_append_texts(last - len(fresh) + 1, fresh))

    async def deploy_status(self, event):
        # The worker stores (and relays) every line before the status change that follows
        # it: after a final status, judged by the event and not by a fresher row, nothing
        # more will come. Catch up, show it, and close.
        if not await self._still_allowed():
            return
        await self._catch_up()
        await self._send_summary(event)
        if event["status"] in Deploy.FINISHED:
            await self.close(code=FINISHED)
