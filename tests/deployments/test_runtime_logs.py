"""/apps/<app>/logs/ and its SSE stream: the live service's output, labelled and redacted
(the engine boundary is patched: deployments.boundaries.engine)."""

from __future__ import annotations

import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient

from apps import access
from deployments import logstream, runtime_logs
from deployments.boundaries import engine
from secrets_vault import services as vault
from tests import base
from tests.deployments.test_sse import Reader

pytestmark = pytest.mark.django_db(transaction=True)
cast = base.cast

TASK_A, TASK_B = "a" * 25, "b" * 25
STAMP = "2026-11-26T19:01:03.351359766Z"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class FakeLogs:
    """engine.ServiceLogs: yields `lines`, then follows (blocks) until closed."""

    made: list[FakeLogs] = []
    lines: list[engine.ServiceLogLine] = []
    fail: str | None = None

    def __init__(self, name: str, *, tail: int, since: str | None = None) -> None:
        self.name, self.tail, self.since = name, tail, since
        self.closed = threading.Event()
        FakeLogs.made.append(self)

    def __iter__(self):
        yield from FakeLogs.lines
        if FakeLogs.fail:
            raise engine.EngineError(FakeLogs.fail)
        self.closed.wait(10)

    def close(self) -> None:
        self.closed.set()


@pytest.fixture
def fake(monkeypatch):
    FakeLogs.made, FakeLogs.lines, FakeLogs.fail = [], [], None
    tasks = [{"ID": TASK_A, "Slot": 1}, {"ID": TASK_B, "Slot": 2}]
    monkeypatch.setattr(engine, "ServiceLogs", FakeLogs)
    monkeypatch.setattr(engine, "service_get", lambda name: {"Spec": {"Name": name}})
    monkeypatch.setattr(engine, "service_tasks", lambda name: tasks)
    return FakeLogs


def _client(user=None) -> AsyncClient:
    client = AsyncClient()
    if user is not None:
        client.force_login(user)
    return client


def _line(task: str, text: str, time: str = STAMP) -> engine.ServiceLogLine:
    return engine.ServiceLogLine(task=task, time=time, text=text)


def _run(coro_fn) -> None:
    async_to_sync(coro_fn)()


# --- access -----------------------------------------------------------------------------------

WHO = [
    ("owner", 200),
    ("admin", 200),
    ("member", 200),
    ("viewer", 200),
    ("superuser", 200),
    ("staff", 404),  # is_staff alone gives nothing on apps
    ("outsider", 404),
]


@pytest.mark.parametrize("who,status", WHO)
def test_page_access(cast, client, fake, who, status):
    client.force_login(getattr(cast, who))
    resp = client.get("/apps/shop/logs/")
    assert resp.status_code == status
    if status == 200:
        assert b'data-stream="/apps/shop/logs/stream?tail=200"' in resp.content


@pytest.mark.parametrize("who,status", WHO)
def test_stream_access(cast, fake, who, status):
    c = _client(getattr(cast, who))

    async def scenario():
        resp = await c.get("/apps/shop/logs/stream")
        assert resp.status_code == status
        if status == 200:
            reader = Reader(resp)
            await reader.next()  # retry:
            await reader.it.aclose()

    _run(scenario)


def test_both_need_a_login(cast, client, fake):
    assert client.get("/apps/shop/logs/").status_code == 302
    assert client.get("/apps/shop/logs/stream").status_code == 302


@pytest.mark.parametrize("who,shown", [("viewer", True), ("outsider", False)])
def test_the_app_page_links_the_logs_for_those_who_see_it(cast, client, who, shown):
    client.force_login(getattr(cast, who))
    resp = client.get("/apps/shop/")
    assert (b'href="/apps/shop/logs/"' in resp.content) is shown


# --- tail -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "1001", "-1", "1e3", "²", " 5", "5\n", "abc", "99999"])
def test_a_bad_tail_is_a_clear_400(cast, client, fake, value):
    client.force_login(cast.viewer)
    page = client.get("/apps/shop/logs/", {"tail": value})
    assert page.status_code == 400
    assert b"tail must be a whole number of lines from 1 to 1000" in page.content
    stream = client.get("/apps/shop/logs/stream", {"tail": value})
    assert stream.status_code == 400
    assert not fake.made


@pytest.mark.parametrize("value,tail", [(None, 200), ("", 200), ("1", 1), ("1000", 1000)])
def test_the_tail_reaches_the_engine(cast, fake, value, tail):
    query = {} if value is None else {"tail": value}

    c = _client(cast.viewer)

    async def scenario():
        resp = await c.get("/apps/shop/logs/stream", query)
        reader = Reader(resp)
        await reader.next()
        while not fake.made:
            await reader.next()
        await reader.it.aclose()

    fake.lines = [_line(TASK_A, "x")]
    _run(scenario)
    assert (fake.made[0].name, fake.made[0].tail, fake.made[0].since) == ("shop_web", tail, None)


@pytest.mark.parametrize(
    "last,since",
    [
        (STAMP, "1795719663.351359766"),
        ("2026-11-26T19:01:03Z", "1795719663.000000000"),
        ("2026-11-26T19:01:03.5Z", "1795719663.500000000"),
        ("12", None),
        ("2026-13-26T19:01:03Z", None),
        ("2026-11-26T19:01:03.1234567890Z", None),
        ("2026-11-26 19:01:03Z", None),
    ],
)
def test_a_reconnect_resumes_after_its_last_event_id(cast, fake, last, since):
    c = _client(cast.viewer)

    async def scenario():
        resp = await c.get("/apps/shop/logs/stream", headers={"Last-Event-ID": last})
        reader = Reader(resp)
        await reader.events("line", 1)
        await reader.it.aclose()

    fake.lines = [_line(TASK_B, "y", last), _line(TASK_A, "x", "2026-11-27T00:00:00Z")]
    _run(scenario)
    assert fake.made[0].since == since


def test_a_resumed_stream_skips_the_line_it_resumes_after(cast, fake):
    c = _client(cast.viewer)

    async def scenario():
        resp = await c.get("/apps/shop/logs/stream", headers={"Last-Event-ID": STAMP})
        reader = Reader(resp)
        events = await reader.events("line", 1)
        await reader.it.aclose()
        return events

    fake.lines = [
        _line(TASK_A, "shown before", STAMP),
        _line(TASK_A, "new", "2026-11-27T00:00:00Z"),
    ]
    events = async_to_sync(scenario)()
    assert events[0]["data"]["text"] == "new"


# --- the stream -------------------------------------------------------------------------------


def test_lines_come_labelled_by_task_redacted_and_capped(cast, fake):
    vault.secret_set(app=cast.app, key="API_TOKEN", value="s3cr3t-value")
    long = "y" * (logstream.MAX_LINE + 100)
    fake.lines = [
        _line(TASK_A, "GET / token=s3cr3t-value"),
        _line(TASK_B, "<b>not html</b>  "),
        _line(TASK_A, long, "2026-11-26T19:01:04Z"),
        _line("c" * 25, "from a task started since"),
    ]

    c = _client(cast.viewer)

    async def scenario():
        resp = await c.get("/apps/shop/logs/stream")
        assert resp["Content-Type"] == "text/event-stream"
        reader = Reader(resp)
        events = await reader.events("line", 4)
        await reader.it.aclose()
        return events

    events = async_to_sync(scenario)()
    data = [e["data"] for e in events]
    assert data[0] == {"task": "1." + "a" * 12, "text": "GET / token=****"}
    assert data[1] == {"task": "2." + "b" * 12, "text": "<b>not html</b>"}
    assert data[2]["text"] == logstream.truncate(long)
    assert data[2]["text"].endswith("[koyra: 100 more characters of this line not stored]")
    assert data[3]["task"] == "c" * 12  # unknown to the engine's task list
    assert [e["id"] for e in events[:3]] == [STAMP, STAMP, "2026-11-26T19:01:04Z"]
    assert fake.made[0].closed.is_set()  # the viewer went: the engine stream is cut


def test_no_running_service_is_a_notice_not_an_error(cast, fake, monkeypatch):
    monkeypatch.setattr(engine, "service_get", lambda name: None)

    c = _client(cast.viewer)

    async def scenario():
        resp = await c.get("/apps/shop/logs/stream")
        assert resp.status_code == 200
        return await Reader(resp).rest()

    events = async_to_sync(scenario)()
    notices = [e for e in events if e.get("event") == "notice"]
    assert notices[0]["data"]["text"].startswith("shop has no running service yet")
    assert notices[0]["retry"] == "10000"
    assert not fake.made


def test_an_engine_failure_while_following_is_a_notice_and_the_end(cast, fake):
    vault.secret_set(app=cast.app, key="K", value="hunter22")
    fake.lines = [_line(TASK_A, "one")]
    fake.fail = "Cannot follow the logs of shop_web: hunter22 broke"

    c = _client(cast.viewer)

    async def scenario():
        return await Reader(await c.get("/apps/shop/logs/stream")).rest()

    events = async_to_sync(scenario)()
    assert [e["event"] for e in events if "event" in e] == ["line", "notice"]
    assert events[-1]["data"]["text"] == "Cannot follow the logs of shop_web: **** broke"


def test_an_unreadable_secret_hides_the_logs(cast, fake, monkeypatch):
    from secrets_vault import crypto

    def broken(**kw):
        raise crypto.VaultError("Secret K of shop does not decrypt")

    monkeypatch.setattr(vault, "secret_values", broken)

    c = _client(cast.viewer)

    async def scenario():
        return await Reader(await c.get("/apps/shop/logs/stream")).rest()

    events = async_to_sync(scenario)()
    assert events[-1]["data"]["text"].startswith("The logs stay hidden: Secret K")
    assert not fake.made


def test_a_stream_ends_once_the_user_lost_access(cast, fake, monkeypatch):
    monkeypatch.setattr(runtime_logs, "ACCESS_RECHECK_SECONDS", 0.2)
    fake.lines = [_line(TASK_A, "one")]

    c = _client(cast.member)

    async def scenario():
        reader = Reader(await c.get("/apps/shop/logs/stream"))
        await reader.events("line", 1)
        await sync_to_async(access.revoke)(app=cast.app, user=cast.member)
        rest = await reader.rest()
        assert reader.ended and all(e.get("event") != "line" for e in rest)

    _run(scenario)
    assert fake.made[0].closed.is_set()


def test_a_stream_ends_after_its_maximum_duration(cast, fake, monkeypatch):
    monkeypatch.setattr(runtime_logs, "MAX_SECONDS", 0.3)
    fake.lines = [_line(TASK_A, "one")]

    c = _client(cast.viewer)

    async def scenario():
        reader = Reader(await c.get("/apps/shop/logs/stream"))
        await reader.rest()
        assert reader.ended

    _run(scenario)
    assert fake.made[0].closed.is_set()


def test_a_secret_set_while_streaming_is_redacted_and_the_old_one_still(cast, fake, monkeypatch):
    monkeypatch.setattr(runtime_logs, "ACCESS_RECHECK_SECONDS", 0.1)
    vault.secret_set(app=cast.app, key="K", value="old-value-1")
    c = _client(cast.viewer)
    gate = threading.Event()

    def later(self):
        yield _line(TASK_A, "first")
        gate.wait(10)
        yield _line(TASK_A, "old-value-1 new-value-2")
        self.closed.wait(10)

    learn = runtime_logs.Follow.learn_secrets

    def learn_then_go_on(self, app_pk):  # the app prints the new value once it is learnt
        learn(self, app_pk)
        if "new-value-2" in self.redact.values:
            gate.set()

    monkeypatch.setattr(FakeLogs, "__iter__", later)
    monkeypatch.setattr(runtime_logs.Follow, "learn_secrets", learn_then_go_on)

    async def scenario():
        reader = Reader(await c.get("/apps/shop/logs/stream"))
        await reader.events("line", 1)
        await sync_to_async(vault.secret_set)(app=cast.app, key="K", value="new-value-2")
        (event,) = await reader.events("line", 1)  # reading drives the stream's re-checks
        await reader.it.aclose()
        return event

    assert async_to_sync(scenario)()["data"]["text"] == "**** ****"
