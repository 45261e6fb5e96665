"""An app's runtime logs: the live service's output (a tail, then followed), each line labelled
with its task and redacted like the deploy log, relayed to one viewer as Server-Sent Events.

The engine's stream blocks, so a thread of its own reads it into a bounded queue and wakes
the event loop; the loop never waits on Docker. Closing cuts the engine's socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from apps import access
from apps.models import App
from deployments import logstream
from deployments.boundaries import engine
from secrets_vault import crypto
from secrets_vault import services as vault

log = logging.getLogger(__name__)

# A viewer's stream ends after this long; EventSource reconnects by itself and resumes
# after the last line it got (Last-Event-ID), so a forgotten tab holds no thread for ever.
MAX_SECONDS = 600.0
KEEPALIVE_SECONDS = 15.0
ACCESS_RECHECK_SECONDS = 5.0
# Lines read but not yet sent: a viewer slower than the app stalls the reader, not memory.
QUEUE_LINES = 1000
BATCH = 500  # lines sent between two access checks
NO_SERVICE_RETRY_MS = 10_000
NO_SERVICE = "{app} has no running service yet: deploy it, and its output shows here."


@dataclass
class Follow:
    """One viewer's follow of a service's output; `lines` holds dicts, then one notice str."""

    logs: engine.ServiceLogs
    redact: logstream.Redactor
    service: str
    labels: dict[str, str] = field(default_factory=dict)
    lines: queue.Queue[dict[str, str] | str] = field(
        default_factory=lambda: queue.Queue(maxsize=QUEUE_LINES)
    )
    stop: threading.Event = field(default_factory=threading.Event)
    # A resumed stream starts at the last line shown (the engine's `since` includes it).
    shown: str | None = None

    def start(self, wake: Callable[[], None]) -> None:
        threading.Thread(target=self._read, args=(wake,), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.logs.close()

    def learn_secrets(self, app_pk: int) -> None:
        """Redact the app's current secret values too (one set since the stream opened, the
        next deploy's task prints it), and still the old ones (its old tasks may)."""
        app = App.objects.get(pk=app_pk)
        fresh = vault.secret_values(app=app).values()
        self.redact = logstream.Redactor([*self.redact.values, *fresh])

    def _read(self, wake: Callable[[], None]) -> None:
        end = f"{self.service} stopped sending output (removed or replaced): reconnecting."
        try:
            for line in self.logs:
                if line.time == self.shown:
                    continue
                text = logstream.truncate(self.redact(line.text.rstrip()))
                item = {"task": self._label(line.task), "time": line.time, "text": text}
                if not self._put(item):
                    return
                wake()
        except engine.EngineError as exc:
            end = self.redact(str(exc))
        except Exception as exc:  # the viewer is told; nothing else runs on this thread
            end = self.redact(f"Reading the logs failed: {exc}")
            log.warning("runtime logs of %s: %s", self.service, end)
        self._put(end)
        wake()

    def _put(self, item: dict[str, str] | str) -> bool:
        while not self.stop.is_set():
            with contextlib.suppress(queue.Full):
                self.lines.put(item, timeout=0.5)
                return True
        return False

    def _label(self, task_id: str) -> str:
        """`<slot>.<task id>` as `docker service logs` names a task; new tasks are looked up
        when they first speak (a restart, a redeploy's new replicas)."""
        if task_id not in self.labels:
            with contextlib.suppress(engine.EngineError):
                for t in engine.service_tasks(self.service):
                    self.labels[t["ID"]] = f"{t.get('Slot') or ''}.{t['ID'][:12]}".lstrip(".")
            self.labels.setdefault(task_id, task_id[:12])
        return self.labels[task_id]


def open_follow(app_pk: int, *, tail: int, since: str | None, shown: str | None) -> Follow | str:
    """A Follow of the app's service, or a sentence saying why there is none."""
    app = App.objects.get(pk=app_pk)
    try:
        if engine.service_get(app.service_name) is None:
            return NO_SERVICE.format(app=app.name)
        secrets = list(vault.secret_values(app=app).values())
    except engine.EngineError as exc:
        return str(exc)
    except crypto.VaultError as exc:  # unredactable output is not shown at all
        return f"The logs stay hidden: {exc}"
    logs = engine.ServiceLogs(app.service_name, tail=tail, since=since)
    redact = logstream.Redactor(secrets)
    return Follow(logs=logs, redact=redact, service=app.service_name, shown=shown)


def _sse(event: str, data: dict, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


def _may_still_see(user_pk: int, app_pk: int) -> bool:
    user = get_user_model().objects.filter(pk=user_pk).first()
    app = App.objects.filter(pk=app_pk).first()
    return user is not None and app is not None and access.may(user, app, "see")


async def events(
    app_pk: int, user_pk: int, *, tail: int, last_id: str | None, since: str | None
) -> AsyncIterator[str]:
    """`last_id`: the Last-Event-ID the viewer resumes after, `since` the same as the engine's
    `since` (validators.log_since); a fresh start has no valid `since`."""
    yield "retry: 2000\n\n"
    shown = last_id if since else None
    follow = await sync_to_async(open_follow)(app_pk, tail=tail, since=since, shown=shown)
    if isinstance(follow, str):
        yield f"retry: {NO_SERVICE_RETRY_MS}\n" + _sse("notice", {"text": follow})
        return
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the reader stops anyway
            loop.call_soon_threadsafe(woken.set)

    follow.start(wake)
    try:
        async for chunk in _relay(follow, woken, app_pk, user_pk):
            yield chunk
    finally:  # also when the viewer goes (the response task is cancelled)
        follow.close()


async def _relay(
    follow: Follow, woken: asyncio.Event, app_pk: int, user_pk: int
) -> AsyncIterator[str]:
    started = checked = quiet = time.monotonic()
    while time.monotonic() - started < MAX_SECONDS:
        if time.monotonic() - checked >= ACCESS_RECHECK_SECONDS:
            if not await sync_to_async(_may_still_see)(user_pk, app_pk):
                return  # access revoked: the reconnect gets a 404 and stops
            try:
                await sync_to_async(follow.learn_secrets)(app_pk)
            except crypto.VaultError as exc:
                yield _sse("notice", {"text": f"The logs stay hidden: {exc}"})
                return
            checked = time.monotonic()
        woken.clear()
        for _ in range(BATCH):
            try:
                item = follow.lines.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, str):
                yield _sse("notice", {"text": item})
                return
            quiet = time.monotonic()
            yield _sse("line", {"task": item["task"], "text": item["text"]}, item["time"])
        if time.monotonic() - quiet >= KEEPALIVE_SECONDS:
            quiet = time.monotonic()
            yield ": keep-alive\n\n"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), timeout=min(1.0, ACCESS_RECHECK_SECONDS))
