"""GitHub's deliveries, answered several at once on one long-lived thread.

Through Django's ASGI handler every request ran in a thread of its own (a new database
connection each: connect, WAL pragmas, close) with a hop to it and back per middleware, and
each accepted push was a transaction and a dozen statements of its own: at 200 deliveries a
second that was more than the one core a daphne process has (BENCHMARKS.md, webhook intake).
Here the event loop reads a delivery (`POST /webhooks/github/<app>/`) and puts it in line;
one thread takes every delivery waiting in line and answers them together
(`deployments.webhooks.intake.answer_all`: each checked on its own, the accepted pushes
recorded in one transaction and handed to Redis in one round trip). Under a burst the line
grows while a batch is handled, so the next batch is larger and costs less per delivery; one
delivery alone is answered at once. The thread keeps its database connection from one batch
to the next, as a WSGI worker thread would. SPEC §4: the request never runs git or docker.

Anything else under /webhooks/ (another path, another method, a Host that ALLOWED_HOSTS does
not allow) goes to Django's handler, which answers it as it answers any page.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import queue
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.db import connections
from django.http.request import split_domain_port, validate_host
from django.urls import Resolver404, resolve

from deployments import services as deploy_services
from deployments.webhooks import intake
from deployments.webhooks import services as webhook_services
from deployments.webhooks.views import github_webhook

log = logging.getLogger(__name__)

MAX_BATCH = 100  # deliveries answered together at most (one transaction)
MAX_BATCH_BYTES = 8 * 1024 * 1024  # their bodies, together (one more may take it over)
BATCH_WINDOW = 0.003  # seconds a batch waits for more (BENCHMARKS.md, webhook intake)
_FAILED = intake.Answer(500, {"status": "error", "reason": "internal error; see Koyra's log"})


@dataclass(eq=False)
class _Waiting:
    name: str
    headers: dict[str, str]
    body: IO[bytes] | None  # None: over MAX_BODY_BYTES
    size: int
    client: str | None
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future[intake.Answer | None]
    gone: threading.Event  # its sender hung up

    def request(self) -> intake.Request:
        """The request, its body read from where it waited (and that file closed)."""
        body = None
        if self.body is not None:
            with self.body:
                self.body.seek(0)
                body = self.body.read()
        return intake.Request(self.name, self.headers, body, self.client)


class WebhookIntake:
    """The ASGI application for /webhooks/; `fallback` (Django's) serves what it does not."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="koyra-webhooks")
        self._line: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._draining = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        name = _app_name(scope)
        if name is None:
            await self.fallback(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for raw_key, raw_value in scope["headers"]:  # repeated ones joined, as Django does
            key, value = raw_key.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        try:
            body, size = await _read_body(headers, receive)
        except _HungUp:  # while sending: nobody to answer
            return
        client = scope.get("client") or (None,)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[intake.Answer | None] = loop.create_future()
        waiting = _Waiting(name, headers, body, size, client[0], loop, future, threading.Event())
        # As Django's own handler does (listen_for_disconnect): a sender that hung up while its
        # delivery waited in line (GitHub gives up after 10 s) is not served. Its delivery
        # counts as failed on GitHub's side, so handling it would deploy what GitHub reports
        # as not delivered, and an overload would be prolonged by work nobody waits for.
        listener = asyncio.ensure_future(_hang_up(receive, waiting.gone))
        try:
            self._put(waiting)
            answer = await waiting.answer
        finally:
            listener.cancel()
        if answer is not None:
            await _send(send, answer)

    def _put(self, waiting: _Waiting) -> None:
        self._line.put(waiting)
        with self._lock:
            if self._draining:
                return
            self._draining = True
        self.executor.submit(self._drain)

    def _drain(self) -> None:
        """On the thread: answer what is in line, a batch at a time, until it is empty."""
        try:
            self._drain_line()
        except BaseException:
            with self._lock:  # the next delivery starts another drain
                self._draining = False
            raise

    def _drain_line(self) -> None:
        while True:
            batch: list[_Waiting] = []
            self._take(batch)
            if batch and len(batch) < MAX_BATCH and sum(w.size for w in batch) < MAX_BATCH_BYTES:
                # A moment for the deliveries arriving right behind these to join them: the
                # event loop reads them meanwhile (this thread lets go of the GIL while it
                # waits), and a batch costs little more than one delivery.
                time.sleep(BATCH_WINDOW)
                self._take(batch)
            if not batch:
                with self._lock:
                    if self._line.empty():  # else one came in since: it is waiting for us
                        self._draining = False
                        return
                continue
            self._answer_batch(batch)

    def _answer_batch(self, batch: list[_Waiting]) -> None:
        """Settle every delivery of `batch`: its answer, None for one whose sender left, and
        the generic failure if answering breaks down here (never one left waiting)."""
        try:
            live = [w for w in batch if not w.gone.is_set()]
            for w in batch:
                if w not in live:
                    _reply(w, None)
            # The deploys recorded go to the worker's queue once every answer is on its way.
            with deploy_services.enqueue_after():
                answers = self.answer([w.request() for w in live])
                for w, answer in zip(live, answers, strict=True):
                    _reply(w, answer)
        except Exception:
            log.exception("webhook intake: a batch of %d could not be answered", len(batch))
        finally:
            for w in batch:
                if w.body is not None:
                    w.body.close()
                _reply(w, _FAILED)  # if still unsettled

    def _take(self, batch: list[_Waiting]) -> None:
        """Move what is in line to `batch`, up to MAX_BATCH deliveries or MAX_BATCH_BYTES of
        bodies (a batch's bodies are in memory at once; those waiting in line, when large,
        wait on disk)."""
        size = sum(w.size for w in batch)
        while len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
            try:
                batch.append(self._line.get_nowait())
            except queue.Empty:
                return
            size += batch[-1].size

    def answer(self, requests: list[intake.Request]) -> list[intake.Answer]:
        if not requests:
            return []
        try:
            _drop_unusable_connections()
            return intake.answer_all(requests)
        except Exception:
            log.exception("webhook intake: %d deliveries could not be answered", len(requests))
            if len(requests) == 1:
                return [_FAILED]
            # One delivery that breaks the batch must not fail the others with it.
            return [self.answer([r])[0] for r in requests]
        finally:
            _drop_failed_connections()


def _app_name(scope: dict[str, Any]) -> str | None:
    """The app's name when `scope` is a delivery this intake answers, else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    root = scope.get("root_path", "")
    path = scope["path"][len(root) :] if root and scope["path"].startswith(root) else scope["path"]
    name = _webhook_name(path)
    return name if name is not None and _host_allowed(scope) else None


@functools.lru_cache(maxsize=1024)
def _webhook_name(path: str) -> str | None:
    """The app's name when `path` is an app's webhook URL (the URLconf says), else None."""
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return str(match.kwargs["name"]) if match.func is github_webhook else None


def _host_allowed(scope: dict[str, Any]) -> bool:
    """ALLOWED_HOSTS, as `request.get_host()` checks it (Django answers 400 otherwise)."""
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"host"), "")
    if not host and scope.get("server"):
        host = str(scope["server"][0])
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


class _HungUp(Exception):
    """The sender hung up before its body was whole."""


async def _read_body(headers: dict[str, str], receive: Any) -> tuple[IO[bytes] | None, int]:
    """The body and its size; None when it is over the limit (not read past it). In memory
    up to FILE_UPLOAD_MAX_MEMORY_SIZE, on disk beyond, as Django keeps a request's body: a
    line of large bodies (anyone can send them, the signature is checked later) does not
    fill the memory."""
    limit = webhook_services.MAX_BODY_BYTES
    try:
        if int(headers.get("content-length") or 0) > limit:
            return None, 0
    except ValueError:
        pass
    body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115 (closed by its reader)
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            body.close()
            raise _HungUp
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            body.close()
            return None, 0
        body.write(chunk)
        if not message.get("more_body", False):
            return body, size


async def _hang_up(receive: Any, gone: threading.Event) -> None:
    """Sets `gone` when the client disconnects (the only message after a request's body)."""
    message = await receive()
    if message.get("type") == "http.disconnect":
        gone.set()


def _reply(w: _Waiting, answer: intake.Answer | None) -> None:
    """Hand `answer` to the event loop `w` waits on (from the intake's thread)."""
    # RuntimeError: that loop is closed (the server stopped), nobody waits any more.
    with contextlib.suppress(RuntimeError):
        w.loop.call_soon_threadsafe(_settle, w.answer, answer)


def _settle(future: asyncio.Future[intake.Answer | None], answer: intake.Answer | None) -> None:
    if not future.done():
        future.set_result(answer)


def _security_headers() -> list[tuple[bytes, bytes]]:
    """What SecurityMiddleware and XFrameOptionsMiddleware add to every answer of the site."""
    pairs = [("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY"))]
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        pairs.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        pairs.append(("Referrer-Policy", str(settings.SECURE_REFERRER_POLICY)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        pairs.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return [(k.encode(), v.encode()) for k, v in pairs]


async def _send(send: Any, answer: intake.Answer) -> None:
    body = json.dumps(answer.data).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *_security_headers(),
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _drop_failed_connections() -> None:
    """Keep this thread's connections between batches, except one left in a transaction or
    after a database error (a server that restarted, a lost socket): the next batch opens a
    new one, as Django does at the start of every request."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and (conn.errors_occurred or not conn.get_autocommit()):
            conn.close()


def _drop_unusable_connections() -> None:
    """Before a batch: a kept connection the server closed meanwhile (PostgreSQL restarted,
    an idle timeout) is replaced instead of failing the deliveries (SQLite's is always
    usable)."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.is_usable():
            conn.close()
