"""Deploy logs and status, stored then relayed. The only module that names the Channels groups
and calls group_send: the same call stores a line and pushes it to viewers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import connection, transaction
from django.db.models import Field, Max
from django.utils import timezone

from deployments.models import Deploy, LogLine

log = logging.getLogger(__name__)
REDACTED = "****"
# One stored line at most (a build can print megabytes without a newline).
MAX_LINE = 8 * 1024
CUT_MARK = "[koyra: {n} more characters of this line not stored]"
# Inside DeployLog.batched(): lines are handed on together at least this often, and sooner
# when this many are held (a relay message stays small; a viewer's channel holds 100). Each
# message costs the writer, Redis and every viewer's consumer a round of work whatever its
# size: at 200 lines a 10,000-line build was 54 messages, at 500 about 25, and no line waits
# longer for it (the 50 ms window still bounds the wait). Not larger: whatever delays one
# hand-over (the worker descheduled on a busy machine) delays every line it holds.
BATCH_SECONDS = 0.05
BATCH_LINES = 500
BATCH_CHARS = 64 * 1024
# The log of each deploy this process is writing, for status_changed (weak: a log is
# dropped with the run that made it).
_open: weakref.WeakValueDictionary[int, DeployLog] = weakref.WeakValueDictionary()


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
    # A loop made before fork() (the worker's sweep relays a status, then RQ forks a work
    # horse) is left alone in the child: its selector and Redis socket are the parent's too.
    if loop is None or loop.is_closed() or getattr(_relay, "pid", None) != os.getpid():
        loop = _relay.loop = asyncio.new_event_loop()
        _relay.pid = os.getpid()
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
        if not self.values:
            return text
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
    """Appends numbered lines to one deploy's log, stores them and relays them to viewers.

    A line is stored and relayed as it comes, except inside `batched()` (a build, a push, a
    release job: streams that can print thousands of lines a second). There lines are held
    for at most BATCH_SECONDS after the previous hand-over, then stored with one insert and
    relayed as one message: a chatty build costs tens of round trips a second instead of one
    per line, and stays within what a viewer's channel holds. A line after a quiet spell still
    goes at once; the stream's reader calls flush() when it goes quiet (engine._paced), and
    a status change hands on what is held first (status_changed), so a viewer never sees a
    status before the lines that led to it."""

    def __init__(self, deploy: Deploy, redactor: Redactor | None = None) -> None:
        self.deploy = deploy
        self.redact = redactor or Redactor()
        earlier = _open.get(deploy.pk)
        if earlier is not None:  # e.g. the job's safety net after the pipeline's log
            earlier.flush()
        self.seq = LogLine.objects.filter(deploy=deploy).aggregate(m=Max("seq"))["m"] or 0
        # The texts of lines self.seq - len(held) + 1 .. self.seq, not stored yet.
        self.held: list[str] = []
        self.held_chars = 0
        self.batching = 0
        self.handed = 0.0  # time.monotonic() of the last hand-over
        _open[deploy.pk] = self

    def line(self, text: str) -> None:
        # Per line as little as can be: a build can print thousands a second.
        parts = str(text).splitlines() or [""]
        for part in parts:
            clean = self.redact(part.rstrip())
            if len(clean) > MAX_LINE:
                clean = truncate(clean)
            self.held.append(clean)
            self.held_chars += len(clean)
        self.seq += len(parts)
        if (
            not self.batching
            or len(self.held) >= BATCH_LINES
            or self.held_chars >= BATCH_CHARS
            or time.monotonic() - self.handed >= BATCH_SECONDS
        ):
            self.flush()

    __call__ = line

    def flush(self) -> None:
        """Store and relay every line held (nothing when none is): one message of consecutive
        lines, {"first": its seq, "texts": [...]}, as compact as the relay can carry them."""
        if not self.held:
            return
        texts, self.held, self.held_chars = self.held, [], 0
        first = self.seq - len(texts) + 1
        _store(self.deploy.pk, first, texts)
        _send(self.deploy.pk, {"type": "log.lines", "first": first, "texts": texts})
        self.handed = time.monotonic()

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        self.batching += 1
        try:
            yield
        finally:
            self.batching -= 1
            self.flush()


def _store(deploy_id: int, first: int, texts: list[str]) -> None:
    """Lines first, first + 1, ... in one transaction, as INSERTs of many rows each. Not
    bulk_create: making and preparing a model instance per line cost ~60 us, most of a chatty
    build's logging (a RUN printing 10,000 lines); the rows are three plain values and one
    timestamp for the batch. Not executemany either: SQLite took twice the CPU for the same
    rows one at a time (~10 us a row; ~5 us in statements of ~250 rows)."""
    if not texts:
        return
    created = connection.ops.adapt_datetimefield_value(timezone.now())
    per_statement = _rows_per_statement()
    # One transaction: in autocommit, SQLite commits (and writes the WAL) once per statement.
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(texts), per_statement):
            chunk = texts[start : start + per_statement]
            params: list[int | str | None] = []
            for seq, text in enumerate(chunk, first + start):
                params += (deploy_id, seq, text, created)
            cursor.execute(_insert_sql(len(chunk)), params)


def _columns() -> list[Field]:
    fields = [LogLine._meta.get_field(n) for n in ("deploy", "seq", "text", "created")]
    return [f for f in fields if isinstance(f, Field)]


@functools.cache
def _rows_per_statement() -> int:
    """As many rows as the database takes parameters for in one statement (SQLite: 999)."""
    return max(1, connection.ops.bulk_batch_size(_columns(), [None] * BATCH_LINES))


@functools.lru_cache(maxsize=4)  # a full statement and the last of a batch, mostly
def _insert_sql(rows: int) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in _columns())
    row = "(" + ", ".join(["%s"] * len(_columns())) + ")"
    # Names from the model's own metadata, values only as parameters.
    table = quote(LogLine._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * rows)}"  # noqa: S608


def status_changed(deploy: Deploy) -> None:
    held = _open.get(deploy.pk)
    if held is not None:
        held.flush()
    _send(
        deploy.pk,
        {
            "type": "deploy.status",
            "status": deploy.status,
            "stages": deploy.stages,
            "error": deploy.error,
        },
    )
