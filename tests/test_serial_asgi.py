"""GitHub's deliveries are served through the real ASGI application by koyra/serial_asgi.py:
every delivery waiting in line is answered together on one thread that keeps its database
connection between batches, with the answers the view gives; every other request under
/webhooks/ and every other page goes through Django's ASGI handler."""

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


def test_deliveries_get_djangos_host_check_and_security_headers():
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


# --- Several deliveries answered together -------------------------------------------------


def _scope(path: str, headers: dict[str, str], method: str = "POST") -> dict:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


def _signed(payload: dict, *, event: str = "push", delivery: str | None = None, **kw) -> tuple:
    """(headers, body) of a delivery as GitHub sends it; `kw`: content_type, secret."""
    content_type = kw.get("content_type", gh.JSON)
    body = gh.encode(payload, content_type)
    headers = {
        "Host": "127.0.0.1",
        "Content-Type": content_type,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": gh.github.signature(kw.get("secret", gh.SECRET), body),
    }
    return headers, body


def _malformed() -> tuple[dict, bytes]:
    body = b"{not json"
    headers, _ = _signed(gh.push())
    return {**headers, "X-Hub-Signature-256": gh.github.signature(gh.SECRET, body)}, body


def _together(requests: list[tuple[str, dict, bytes]], monkeypatch) -> tuple[list, list]:
    """Send every request while the intake's thread is busy, so they wait in line and are
    answered as one batch; (their answers, the sizes of the batches answer_all was given)."""
    import threading

    from asgiref.testing import ApplicationCommunicator

    from koyra import serial_asgi

    batches: list[int] = []
    real = serial_asgi.intake.answer_all

    def counting(reqs):
        batches.append(len(reqs))
        return real(reqs)

    monkeypatch.setattr(serial_asgi.intake, "answer_all", counting)
    busy = threading.Event()
    ahead = asgi._serial_app.executor.submit(busy.wait, 30)

    async def one(path: str, headers: dict, body: bytes) -> dict:
        comm = ApplicationCommunicator(asgi.application, _scope(path, headers))
        await comm.send_input({"type": "http.request", "body": body, "more_body": False})
        start = await comm.receive_output(timeout=30)
        content = await comm.receive_output(timeout=30)
        return {"status": start["status"], "body": content["body"]}

    async def scenario() -> list[dict]:
        tasks = [asyncio.ensure_future(one(*r)) for r in requests]
        while asgi._serial_app._line.qsize() < len(requests):
            await asyncio.sleep(0.01)
        busy.set()
        return list(await asyncio.gather(*tasks))

    out = asyncio.run(scenario())
    ahead.result()
    import json

    return [(o["status"], json.loads(o["body"])) for o in out], batches


def test_deliveries_that_arrive_together_are_answered_together_each_with_its_own_deploy(
    monkeypatch,
):
    apps = [AppFactory(name=f"octo{i}", repo_url=gh.REPO_URL) for i in range(3)]
    shas = [uuid.uuid4().hex + uuid.uuid4().hex[:8] for _ in range(12)]
    requests = [
        (f"/webhooks/github/octo{i % 3}/", *_signed(gh.push(sha=sha))) for i, sha in enumerate(shas)
    ]
    answers, batches = _together(requests, monkeypatch)
    assert batches == [12]
    for i, (status, data) in enumerate(answers):
        assert status == 202, data
        deploy = Deploy.objects.get(pk=data["deploy"])
        assert (deploy.app, deploy.commit, deploy.status) == (
            apps[i % 3],
            shas[i],
            Deploy.Status.QUEUED,
        )
        assert WebhookDelivery.objects.get(deploy=deploy).outcome == "accepted"
    assert Deploy.objects.count() == 12


def test_a_batch_answers_each_kind_of_delivery_as_the_view_does(monkeypatch):
    """Every answer a delivery can get, all in one batch: the batch changes none of them."""
    AppFactory(name="octo", repo_url=gh.REPO_URL)
    AppFactory(name="other", repo_url=gh.REPO_URL, branch="release")
    same = str(uuid.uuid4())
    path = "/webhooks/github/octo/"
    requests = [
        (path, *_signed(gh.push(sha="a" * 40), delivery=same)),  # queued
        (path, *_signed(gh.push(sha="a" * 40), delivery=same)),  # its redelivery
        (path, *_signed(gh.push(sha="b" * 40), content_type=gh.FORM)),  # form-encoded
        (path, *_signed(gh.push(sha="c" * 40), secret="wrong")),  # refused, unsigned
        (path, *_signed(gh.ping(), event="ping")),  # pong
        ("/webhooks/github/other/", *_signed(gh.push(sha="d" * 40))),  # another branch
        ("/webhooks/github/nobody/", *_signed(gh.push(sha="e" * 40))),  # no such app
        (path, *_signed(gh.push(sha="f" * 40), delivery="not a delivery id")),
        (path, *_malformed()),
    ]
    answers, batches = _together(requests, monkeypatch)
    assert batches == [len(requests)]
    statuses = [status for status, _ in answers]
    kinds = [data["status"] for _, data in answers]
    assert statuses == [202, 200, 202, 403, 200, 200, 404, 400, 400]
    assert kinds == [
        "queued", "duplicate", "queued", "refused", "pong", "ignored", "refused", "refused",
        "refused",
    ]  # fmt: skip
    assert Deploy.objects.count() == 2
    assert WebhookDelivery.objects.filter(delivery_id=same, outcome="accepted").count() == 1


def test_a_delivery_that_breaks_its_batch_fails_alone(monkeypatch, caplog):
    from deployments.webhooks import github

    AppFactory(name="octo", repo_url=gh.REPO_URL)
    real = github.decide

    def decide(**kw):
        if kw["payload"].get("after") == "b" * 40:
            raise RuntimeError("a bug in reading this payload")
        return real(**kw)

    monkeypatch.setattr(github, "decide", decide)
    path = "/webhooks/github/octo/"
    requests = [(path, *_signed(gh.push(sha=c * 40))) for c in "abc"]
    answers, batches = _together(requests, monkeypatch)
    assert batches == [3, 1, 1, 1]  # the batch, then each on its own
    assert [status for status, _ in answers] == [202, 500, 202]
    assert answers[1][1] == {"status": "error", "reason": "internal error; see Koyra's log"}
    assert sorted(Deploy.objects.values_list("commit", flat=True)) == ["a" * 40, "c" * 40]
    assert "a bug in reading this payload" in caplog.text


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_without_being_read_whole(monkeypatch, declared):
    from asgiref.testing import ApplicationCommunicator

    from deployments.webhooks import services as webhook_services

    AppFactory(name="octo", repo_url=gh.REPO_URL)
    monkeypatch.setattr(webhook_services, "MAX_BODY_BYTES", 1000)
    headers, _ = _signed(gh.push())
    if declared:
        headers["Content-Length"] = "5000"

    async def scenario() -> list[dict]:
        comm = ApplicationCommunicator(asgi.application, _scope("/webhooks/github/octo/", headers))
        for _ in range(5):  # 5 x 600 bytes; with a declared length none is needed
            await comm.send_input({"type": "http.request", "body": b"x" * 600, "more_body": True})
        return [await comm.receive_output(timeout=30), await comm.receive_output(timeout=30)]

    start, body = asyncio.run(scenario())
    assert start["status"] == 413
    assert b"over 1000 bytes" in body["body"]
    assert not WebhookDelivery.objects.exists()


def test_other_methods_and_paths_under_webhooks_are_djangos_to_answer():
    for method, path, status in [
        ("GET", "/webhooks/github/octo/", 405),
        ("POST", "/webhooks/github/octo", 301),  # APPEND_SLASH: not an app's URL
        ("POST", "/webhooks/gitlab/octo/", 404),
    ]:
        communicator = HttpCommunicator(
            asgi.application, method, path, headers=[(b"host", b"127.0.0.1")]
        )
        response = asyncio.run(communicator.get_response(timeout=30))
        assert response["status"] == status, (method, path)
    assert _handlers_connection() is None  # none of them ran on the intake's thread


def test_a_body_that_waited_on_disk_is_read_back_whole(settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100  # every body here is larger: spooled to disk
    app = AppFactory(name="octo", repo_url=gh.REPO_URL)
    response = _delivery("octo")
    assert response["status"] == 202, response["body"]
    assert WebhookDelivery.objects.get(app=app).outcome == "accepted"


def test_a_batch_that_breaks_down_is_answered_and_the_intake_goes_on(monkeypatch, caplog):
    from koyra import serial_asgi

    AppFactory(name="octo", repo_url=gh.REPO_URL)

    def broken(self):
        raise OSError("No space left on device")  # the body's file could not be read back

    with monkeypatch.context() as patch:
        patch.setattr(serial_asgi._Waiting, "request", broken)
        response = _delivery("octo")
    assert response["status"] == 500  # answered, not left waiting
    assert "No space left on device" in caplog.text
    assert _delivery("octo")["status"] == 202  # the next one is handled as usual


def test_the_answer_is_on_its_way_before_the_deploy_is_handed_to_the_worker(monkeypatch):
    """The committed row is the record; the worker's queue is transport, and RQ's work (0.6 ms
    of the GIL a job) no longer delays the answers of the batch."""
    from deployments import services
    from koyra import serial_asgi

    app = AppFactory(name="octo", repo_url=gh.REPO_URL)
    events: list[str] = []
    reply = serial_asgi._reply
    monkeypatch.setattr(
        serial_asgi, "_reply", lambda w, answer: (events.append("answer"), reply(w, answer))
    )
    monkeypatch.setattr(
        services,
        "deploy_enqueue_many",
        lambda *, deploy_ids: events.append(f"enqueue {list(deploy_ids)}"),
    )
    response = _delivery("octo")
    assert response["status"] == 202, response["body"]
    deploy = Deploy.objects.get(app=app)
    assert events[:2] == ["answer", f"enqueue {[deploy.pk]}"]
