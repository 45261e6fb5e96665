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
# An open socket re-checks access this often (and on every status message), and reads what
# the relay may have missed meanwhile (see DeployLogConsumer).
ACCESS_RECHECK_SECONDS = 5.0


@database_sync_to_async
def _may_see(user, pk: int) -> bool:
    return _access(user, pk) is not None


@database_sync_to_async
def _may_see_and_finished(user, pk: int) -> tuple[bool, bool]:
    finished = _access(user, pk)
    return finished is not None, bool(finished)


def _access(user, pk: int) -> bool | None:
    """None when `user` may not see deploy `pk` (or either is gone), else whether the deploy
    is finished."""
    if user is None or not user.is_authenticated:
        return None
    user = get_user_model().objects.filter(pk=user.pk).first()  # fresh: is_active, roles
    deploy = Deploy.objects.select_related("app").filter(pk=pk).first()
    if user is None or deploy is None or not access.may(user, deploy.app, "see"):
        return None
    return deploy.is_finished


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
    dropped) and never zero times. The relay is Redis pub/sub, which forgets what it could
    not deliver (a dropped connection): a gap in the relayed seqs is filled from the database,
    the log's record, and every ACCESS_RECHECK_SECONDS the socket reads what it missed, and
    closes once the deploy is finished, even when the final status never came."""

    sent = 0
    closed = False
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

    async def dispatch(self, message):
        # Channels closes stale database connections before every handler, a hop to a thread
        # and back (a third of this consumer's CPU during a chatty build). log.lines touches
        # the database only through database_sync_to_async, which closes them itself.
        if message.get("type") == "log.lines":
            await self.log_lines(message)
            return
        await super().dispatch(message)

    async def close(self, code=None, reason=None):
        """Once: the watcher and a status event may both decide to close."""
        if self.closed:
            return
        self.closed = True
        await super().close(code=code, reason=reason)

    async def _watch_access(self) -> None:
        while not self.closed:
            await asyncio.sleep(ACCESS_RECHECK_SECONDS)
            allowed, finished = await _may_see_and_finished(self.scope.get("user"), self.pk)
            if not allowed:
                await self._revoke()
                return
            await self._catch_up()
            if finished and not self.closed:  # its final status event was lost
                await self._send_summary()
                await self.close(code=FINISHED)

    async def _still_allowed(self) -> bool:
        """False (and the socket closed) once the user may no longer see the deploy."""
        if await _may_see(self.scope.get("user"), self.pk):
            return True
        await self._revoke()
        return False

    async def _revoke(self) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
        await self.close(code=REVOKED)

    async def receive(self, text_data=None, bytes_data=None):
        pass  # nothing to say to us

    async def _catch_up(self, upto: int | None = None) -> None:
        lines = await _lines(self.pk, self.sent, upto)
        # The relay may have sent some of them while the database was read.
        lines = [line for line in lines if line["seq"] > self.sent]
        if lines and not self.closed:
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
        if last <= self.sent or self.closed:
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
        if self.closed or not await self._still_allowed():
            return
        await self._catch_up()
        await self._send_summary(event)
        if event["status"] in Deploy.FINISHED:
            await self.close(code=FINISHED)
