"""GitHub's deliveries are served through the real ASGI application by koyra/serial_asgi.py:
Django's whole synchronous handler (middleware, URLconf, view) on one thread that keeps its
database connection between requests; every other page goes through Django's ASGI handler."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.testing import HttpCommunicator
from django.db import connections

from deployments.models import Deploy
from deployments.webhooks.models import WebhookDelivery
from koyra import asgi
from koyra.serial_asgi import _drop_failed_connections
from tests.deployments.webhooks import payloads as gh
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the handler's thread has its own connection


@pytest.fixture(autouse=True)
def _redis_is_down(settings):
    # The row is the queue of record; the worker's sweep enqueues it once Redis is back.
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}


@pytest.fixture(autouse=True)
def _close_the_handlers_connection():
    yield
    asgi._serial_app.executor.submit(connections.close_all).result()


def _post(path: str, body: bytes, headers: dict[str, str]) -> dict:
    communicator = HttpCommunicator(
        asgi.application,
        "POST",
        path,
        body=body,
        headers=[(k.lower().encode(), v.encode()) for k, v in headers.items()],
    )
    return asyncio.run(communicator.get_response(timeout=30))


def _delivery(app_name: str, *, host: str = "127.0.0.1", secret: str = gh.SECRET) -> dict:
    body = gh.encode(gh.push(), gh.JSON)
    return _post(
        f"/webhooks/github/{app_name}/",
        body,
        {
            "Host": host,
            "Content-Type": gh.JSON,
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": gh.github.signature(secret, body),
        },
    )


def _handlers_connection() -> object:
    """The DB-API connection the handler's thread holds now (None: none open)."""
    return asgi._serial_app.executor.submit(lambda: connections["default"].connection).result()


def test_a_delivery_is_recorded_and_queued_through_the_asgi_application():
    app = AppFactory(name="octo", repo_url=gh.REPO_URL)
    response = _delivery("octo")
    assert response["status"] == 202, response["body"]
    deploy = Deploy.objects.get(app=app)
    assert WebhookDelivery.objects.get(app=app, outcome="accepted").deploy == deploy
    assert deploy.status == Deploy.Status.QUEUED


def test_the_handlers_thread_keeps_its_database_connection_between_deliveries():
    AppFactory(name="octo", repo_url=gh.REPO_URL)
    assert _delivery("octo")["status"] == 202
    first = _handlers_connection()
    assert first is not None
    assert _delivery("octo")["status"] == 202
    assert _handlers_connection() is first
    assert Deploy.objects.count() == 2


def test_the_middleware_still_runs_for_deliveries():
    AppFactory(name="octo", repo_url=gh.REPO_URL)
    # ALLOWED_HOSTS (CommonMiddleware), and SecurityMiddleware's headers on the answer.
    assert _delivery("octo", host="evil.example")["status"] == 400
    answer = _delivery("octo")
    assert (b"x-content-type-options", b"nosniff") in [(k.lower(), v) for k, v in answer["headers"]]
    # The view's own refusals: a wrong signature records nothing.
    assert _delivery("octo", secret="not-the-secret")["status"] == 403
    assert WebhookDelivery.objects.count() == 1


def test_other_paths_are_served_by_djangos_asgi_handler():
    communicator = HttpCommunicator(
        asgi.application, "GET", "/accounts/login/", headers=[(b"host", b"127.0.0.1")]
    )
    response = asyncio.run(communicator.get_response(timeout=30))
    assert response["status"] == 200
    assert _handlers_connection() is None  # the pages' request never ran on that thread


@pytest.mark.parametrize(
    ("errors", "autocommit", "kept"),
    [(False, True, True), (True, True, False), (False, False, False)],
    ids=["healthy", "after-an-error", "left-in-a-transaction"],
)
def test_a_connection_is_kept_only_when_healthy(errors, autocommit, kept):
    conn = connections["default"]
    conn.ensure_connection()
    conn.set_autocommit(autocommit)
    conn.errors_occurred = errors
    try:
        _drop_failed_connections()
        assert (conn.connection is not None) is kept
    finally:
        conn.close()


@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_the_server_closed_is_replaced_before_the_next_request(monkeypatch):
    from django.db import connection

    from koyra import serial_asgi

    connection.ensure_connection()
    serial_asgi._drop_unusable_connections()
    assert connection.connection is not None  # a usable one is kept
    monkeypatch.setattr(connection, "is_usable", lambda: False)
    serial_asgi._drop_unusable_connections()
    assert connection.connection is None


@pytest.mark.parametrize("hangs_up", [True, False])
def test_a_delivery_whose_sender_hung_up_before_its_turn_is_not_handled(hangs_up):
    """Deliveries wait in line for the handler's one thread; GitHub gives up after 10 s. One
    whose sender left meanwhile is dropped unhandled (GitHub reports it failed: it must not
    deploy); one still awaited is handled as usual."""
    import threading

    from asgiref.testing import ApplicationCommunicator

    app = AppFactory(name="octo", repo_url=gh.REPO_URL)
    body = gh.encode(gh.push(), gh.JSON)
    headers = {
        "host": "127.0.0.1",
        "content-type": gh.JSON,
        "x-github-event": "push",
        "x-github-delivery": str(uuid.uuid4()),
        "x-hub-signature-256": gh.github.signature(gh.SECRET, body),
    }
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/github/octo/",
        "raw_path": b"/webhooks/github/octo/",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    busy = threading.Event()
    ahead = asgi._serial_app.executor.submit(busy.wait, 30)  # the delivery before it

    async def scenario() -> list[dict]:
        comm = ApplicationCommunicator(asgi.application, scope)
        await comm.send_input({"type": "http.request", "body": body, "more_body": False})
        await asyncio.sleep(0.3)  # it waits behind the one ahead
        if hangs_up:
            await comm.send_input({"type": "http.disconnect"})
            await asyncio.sleep(0.3)
        busy.set()
        out: list[dict] = []
        try:
            while True:
                out.append(await comm.receive_output(timeout=10 if not out else 5))
                if out[-1]["type"] == "http.response.body" and not out[-1].get("more_body"):
                    break
        except TimeoutError:
            pass
        await comm.wait(timeout=5)
        return out

    out = asyncio.run(scenario())
    ahead.result()
    if hangs_up:
        assert out == []
        assert not Deploy.objects.filter(app=app).exists()
        assert not WebhookDelivery.objects.filter(app=app).exists()
    else:
        assert out[0]["type"] == "http.response.start" and out[0]["status"] == 202
        assert WebhookDelivery.objects.get(app=app, outcome="accepted").deploy is not None
