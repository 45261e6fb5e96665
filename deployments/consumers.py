from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from deployments import live
from deployments.models import Deploy, LogLine


@database_sync_to_async
def _may_see(user, pk: int) -> bool:
    deploy = Deploy.objects.select_related("app").filter(pk=pk).first()
    return deploy is not None and deploy.app.visible_to(user)


@database_sync_to_async
def _backlog(pk: int, after: int) -> tuple[list[dict], dict]:
    d = Deploy.objects.get(pk=pk)
    lines = [
        {"seq": s, "text": t}
        for s, t in LogLine.objects.filter(deploy_id=pk, seq__gt=after)
        .order_by("seq")
        .values_list("seq", "text")
    ]
    return lines, {"status": d.status, "stages": d.stages, "error": d.error}


class DeployLogConsumer(AsyncJsonWebsocketConsumer):
    """Joins the deploy's group, sends the backlog, then relays. Lines carry their seq, so a
    client drops what it already has: no gaps (join before reading the backlog) and no
    duplicates."""

    async def connect(self):
        self.pk = int(self.scope["url_route"]["kwargs"]["pk"])
        user = self.scope.get("user")
        if user is None or not await _may_see(user, self.pk):
            await self.close(code=4403)
            return
        await self.channel_layer.group_add(live.group_name(self.pk), self.channel_name)
        await self.accept()
        after = 0
        qs = self.scope.get("query_string", b"").decode()
        for part in qs.split("&"):
            if part.startswith("after=") and part[6:].isdigit():
                after = int(part[6:])
        lines, status = await _backlog(self.pk, after)
        self.sent = after
        for line in lines:
            await self._line(line)
        await self.send_json({"type": "status", **status})

    async def disconnect(self, code):
        if hasattr(self, "pk"):
            await self.channel_layer.group_discard(live.group_name(self.pk), self.channel_name)

    async def _line(self, line: dict) -> None:
        if line["seq"] > self.sent:
            self.sent = line["seq"]
            await self.send_json({"type": "line", "seq": line["seq"], "text": line["text"]})

    async def log_line(self, event):
        await self._line(event)

    async def deploy_status(self, event):
        await self.send_json(
            {
                "type": "status",
                "status": event["status"],
                "stages": event["stages"],
                "error": event["error"],
            }
        )
