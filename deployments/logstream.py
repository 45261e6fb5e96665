"""Deploy logs and status, stored then relayed. The only module that names the Channels groups
and calls group_send: the same call stores a line and pushes it to viewers."""

from __future__ import annotations

import asyncio
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db.models import Max

from deployments.models import Deploy, LogLine

log = logging.getLogger(__name__)
REDACTED = "****"
# One stored line at most (a build can print megabytes without a newline).
MAX_LINE = 8 * 1024
CUT_MARK = "[koyra: {n} more characters of this line not stored]"


def group_name(deploy_id: int) -> str:
    return f"deploy-{deploy_id}"


_relay = threading.local()


def _send(deploy_id: int, message: dict) -> None:
    # The database already holds the line; a relay failure (Redis down) only delays viewers,
    # who catch up from the stored backlog when they reconnect.
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        group = group_name(deploy_id)
        # The in-memory layer (tests) keeps its queues on the consumer's loop, and a thread
        # already running a loop cannot block on another: both take asgiref's way.
        if isinstance(layer, InMemoryChannelLayer) or _loop_running():
            async_to_sync(layer.group_send)(group, message)
        else:
            _relay_loop().run_until_complete(layer.group_send(group, message))
    except Exception as exc:
        log.warning("live relay for deploy %s failed: %s", deploy_id, exc)


def _relay_loop() -> asyncio.AbstractEventLoop:
    """One event loop per (worker) thread, kept: channels-redis keeps its connections per
    loop, so a relay costs one round trip instead of a new loop and connection per line
    (2.6 ms -> well under 1 ms a line; a chatty build streams without slowing down)."""
    loop = getattr(_relay, "loop", None)
    if loop is None or loop.is_closed():
        loop = _relay.loop = asyncio.new_event_loop()
    return loop


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Redactor:
    """Replaces every secret value by ****, also when a value arrives split across chunks
    (lines are only ever redacted whole, and a partial line is held until its end)."""

    def __init__(self, values: list[str] | None = None) -> None:
        # Log lines are stored one by one and right-stripped, so a multi-line value (a PEM
        # key) never appears whole in one, nor a value with trailing blanks at a line's end:
        # each of its lines, stripped, is redacted too.
        variants = set()
        for v in values or []:
            variants.update([v, *(part.strip() for part in [v, *v.splitlines()])])
        self.values = sorted({v for v in variants if v}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for v in self.values:
            text = text.replace(v, REDACTED)
        return text


def truncate(line: str) -> str:
    """At most MAX_LINE characters of a line, saying so when cut. Only ever applied to a line
    already redacted whole: cut first, a secret split at the cut would be stored in part."""
    if len(line) <= MAX_LINE:
        return line
    return f"{line[:MAX_LINE]} {CUT_MARK.format(n=len(line) - MAX_LINE)}"


class DeployLog:
    """Appends numbered lines to one deploy's log and relays each as it is stored."""

    def __init__(self, deploy: Deploy, redactor: Redactor | None = None) -> None:
        self.deploy = deploy
        self.redact = redactor or Redactor()
        self.seq = LogLine.objects.filter(deploy=deploy).aggregate(m=Max("seq"))["m"] or 0

    def line(self, text: str) -> None:
        for part in str(text).splitlines() or [""]:
            self.seq += 1
            clean = truncate(self.redact(part.rstrip()))
            LogLine.objects.create(deploy=self.deploy, seq=self.seq, text=clean)
            _send(self.deploy.pk, {"type": "log.line", "seq": self.seq, "text": clean})

    __call__ = line


def status_changed(deploy: Deploy) -> None:
    _send(
        deploy.pk,
        {
            "type": "deploy.status",
            "status": deploy.status,
            "stages": deploy.stages,
            "error": deploy.error,
        },
    )
