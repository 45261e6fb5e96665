"""Django's request handling on one long-lived thread, for the webhook intake.

Django's ASGI handler runs every request in a thread of its own (a new one per request, so a
new database connection per request: connect, WAL pragmas, close) and hops to it and back once
per middleware. Through daphne that cost ~14 ms of CPU per request on a 2-core machine before
the view ran a query (BENCHMARKS.md, webhook intake). GitHub's deliveries come in bursts, and
their view only touches the database and Redis (SPEC §4: the request never runs git or
docker), so here each one is one hop to a single thread that runs Django's synchronous
handler (the same middleware, URLconf and view) and keeps its database connection from one
request to the next, as a WSGI worker thread would. The deliveries are handled one at a time,
in order: they never wait on each other's SQLite write lock either.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import connections
from django.http import HttpResponseBase
from django.urls import set_script_prefix


class SerialASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="koyra-serial")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"SerialASGIHandler serves HTTP only, not {scope['type']}")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        # As Django's own handler does (listen_for_disconnect): a sender that hung up while its
        # request waited for its turn (GitHub gives up after 10 s) is not served. Its delivery
        # counts as failed on GitHub's side, so handling it would deploy what GitHub reports
        # as not delivered, and an overload would be prolonged by work nobody waits for.
        gone = threading.Event()
        listener = asyncio.ensure_future(_hang_up(receive, gone))
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(
                self.executor, self.respond, scope, body_file, gone
            )
        finally:
            listener.cancel()
        if response is None:
            return
        try:
            await self.send_response(response, send)
        finally:
            # Sends request_finished, whose close_old_connections runs in this (event loop)
            # thread, which holds no connection: the handler thread's stays open.
            response.close()

    def respond(
        self, scope: dict[str, Any], body_file: Any, gone: threading.Event | None = None
    ) -> HttpResponseBase | None:
        """The response to one request, on the handler's thread (None: its sender left
        before its turn, and it was not handled)."""
        try:
            if gone is not None and gone.is_set():
                return None
            _drop_unusable_connections()
            set_script_prefix(get_script_prefix(scope))
            request, error = self.create_request(scope, body_file)
            if request is None:
                assert error is not None  # create_request gives one or the other
                return error
            return self.get_response(request)
        finally:
            body_file.close()
            _drop_failed_connections()


async def _hang_up(receive: Any, gone: threading.Event) -> None:
    """Sets `gone` when the client disconnects (the only message after a request's body)."""
    message = await receive()
    if message.get("type") == "http.disconnect":
        gone.set()


def _drop_failed_connections() -> None:
    """Keep this thread's connections between requests, except one left in a transaction or
    after a database error (a server that restarted, a lost socket): the next request opens a
    new one, as Django does at the start of every request."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and (conn.errors_occurred or not conn.get_autocommit()):
            conn.close()


def _drop_unusable_connections() -> None:
    """Before a request: a kept connection the server closed meanwhile (PostgreSQL restarted,
    an idle timeout) is replaced instead of failing the delivery (SQLite's is always usable)."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.is_usable():
            conn.close()
