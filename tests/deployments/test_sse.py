"""GET /deploys/<id>/logs/stream: the live log as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from deployments import logstream
from deployments.models import Deploy
from tests import base
from tests.factories import DeployFactory

pytestmark = pytest.mark.django_db(transaction=True)
cast = base.cast  # the fixed cast (tests/base.py) as this module's fixture


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _deploy(cast, status: str, *texts: str, finished_ago: int | None = 3600) -> Deploy:
    finished = timezone.now() - timedelta(seconds=finished_ago) if finished_ago else None
    d = DeployFactory.create(app=cast.app, status=status, finished=finished)
    log = logstream.DeployLog(d)
    for t in texts:
        log(t)
    return d


def _client(user=None) -> AsyncClient:
    client = AsyncClient()
    if user is not None:
        client.force_login(user)
    return client


class Reader:
    """Parses the stream into events, one at a time, as a browser's EventSource would."""

    def __init__(self, resp) -> None:
        self.it = aiter(resp.streaming_content)
        self.buf = ""
        self.ended = False

    async def next(self) -> dict | None:
        while "\n\n" not in self.buf:
            try:
                self.buf += (await anext(self.it)).decode()
            except StopAsyncIteration:
                self.ended = True
                return None
        block, self.buf = self.buf.split("\n\n", 1)
        event: dict = {}
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            event[field] = value
        if "data" in event:
            event["data"] = json.loads(event["data"])
        return event

    async def events(self, kind: str, n: int) -> list[dict]:
        out: list[dict] = []
        while len(out) < n:
            e = await self.next()
            assert e is not None, f"stream ended after {out}"
            if e.get("event") == kind:
                out.append(e)
        return out

    async def rest(self) -> list[dict]:
        out: list[dict] = []
        while (e := await self.next()) is not None:
            out.append(e)
        return out


def test_a_finished_deploy_streams_its_whole_log_then_its_status_and_ends(cast):
    d = _deploy(cast, Deploy.Status.FAILED, "one", "<script>alert(1)</script>", "!! boom")
    client = _client(cast.member)

    async def scenario():
        resp = await client.get(f"/deploys/{d.pk}/logs/stream")
        assert resp.status_code == 200
        assert resp["Content-Type"] == "text/event-stream"
        assert resp["Cache-Control"] == "no-cache"
        events = await Reader(resp).rest()
        assert events[0] == {"retry": "2000"}
        lines = [e for e in events if e.get("event") == "line"]
        assert [e["id"] for e in lines] == ["1", "2", "3"]
        assert [e["data"]["text"] for e in lines] == ["one", "<script>alert(1)</script>", "!! boom"]
        # The page's partial, escaped.
        assert lines[1]["data"]["html"] == (
            '<div class="ln" data-seq="2">&lt;script&gt;alert(1)&lt;/script&gt;</div>'
        )
        assert events[-1]["event"] == "status"
        assert events[-1]["data"]["status"] == "failed"

    async_to_sync(scenario)()


@pytest.mark.parametrize(
    "how", [{"headers": {"Last-Event-ID": "2"}}, {"query": "?after=2"}], ids=["header", "query"]
)
def test_it_resumes_after_the_last_event_id(cast, how):
    d = _deploy(cast, Deploy.Status.LIVE, "one", "two", "three", "four")
    client = _client(cast.owner)

    async def scenario():
        resp = await client.get(
            f"/deploys/{d.pk}/logs/stream{how.get('query', '')}", headers=how.get("headers")
        )
        events = await Reader(resp).rest()
        lines = [e for e in events if e.get("event") == "line"]
        assert [(e["id"], e["data"]["text"]) for e in lines] == [("3", "three"), ("4", "four")]

    async_to_sync(scenario)()


def test_a_running_deploy_streams_new_lines_and_status_changes_until_it_finishes(cast):
    d = _deploy(cast, Deploy.Status.BUILDING, "one", finished_ago=None)
    client = _client(cast.owner)

    def worker_goes_on():
        log = logstream.DeployLog(d)
        log("two")
        log("three")
        d.start_stage("push", Deploy.Status.PUSHING)

    def worker_finishes():
        d.mark_live()
        Deploy.objects.filter(pk=d.pk).update(finished=timezone.now() - timedelta(minutes=1))

    async def scenario():
        resp = await client.get(f"/deploys/{d.pk}/logs/stream")
        reader = Reader(resp)
        [first] = await reader.events("line", 1)
        assert first["data"]["text"] == "one"
        [status] = await reader.events("status", 1)
        assert status["data"]["status"] == "building"
        await sync_to_async(worker_goes_on)()
        lines = await reader.events("line", 2)
        assert [e["id"] for e in lines] == ["2", "3"]
        [status] = await reader.events("status", 1)
        assert status["data"]["status"] == "pushing"
        assert "started" in status["data"]["stages"]["push"]
        await sync_to_async(worker_finishes)()
        rest = await reader.rest()
        assert [e["data"]["status"] for e in rest if e.get("event") == "status"] == ["live"]
        assert reader.ended

    async_to_sync(scenario)()


@pytest.mark.parametrize(
    "who,status",
    [
        ("owner", 200),
        ("member", 200),
        ("viewer", 200),
        ("superuser", 200),
        ("staff", 404),  # is_staff alone gives nothing on apps (issue 11)
        ("outsider", 404),
    ],
)
def test_stream_access(cast, who, status):
    d = _deploy(cast, Deploy.Status.LIVE, "one")
    client = _client(getattr(cast, who))

    async def scenario():
        resp = await client.get(f"/deploys/{d.pk}/logs/stream")
        assert resp.status_code == status
        if status == 200:
            await Reader(resp).rest()

    async_to_sync(scenario)()


def test_stream_needs_a_login(cast):
    d = _deploy(cast, Deploy.Status.LIVE, "one")

    async def scenario():
        resp = await _client().get(f"/deploys/{d.pk}/logs/stream")
        assert resp.status_code == 302
        assert resp["Location"].startswith("/accounts/login/?next=")

    async_to_sync(scenario)()


# --- access re-checked on an open stream (apps.access; issue 11) ------------------------------


@pytest.mark.parametrize("how", ["revoke_access", "deactivated"])
def test_a_stream_ends_once_the_user_lost_access(cast, monkeypatch, how):
    from apps import access
    from deployments import views

    monkeypatch.setattr(views, "SSE_ACCESS_RECHECK_SECONDS", 0.3)
    monkeypatch.setattr(views, "SSE_POLL_SECONDS", 0.05)
    d = _deploy(cast, Deploy.Status.BUILDING, "one", finished_ago=None)
    client = _client(cast.member)

    def lose():
        if how == "deactivated":
            type(cast.member).objects.filter(pk=cast.member.pk).update(is_active=False)
        else:
            access.revoke(app=cast.app, user=cast.member)

    async def scenario():
        resp = await client.get(f"/deploys/{d.pk}/logs/stream")
        assert resp.status_code == 200
        reader = Reader(resp)
        assert [e["data"]["text"] for e in await reader.events("line", 1)] == ["one"]
        await sync_to_async(lose)()
        rest = await reader.rest()  # ends (the deploy is still running)
        assert reader.ended
        assert all(e.get("event") != "line" for e in rest)

    async_to_sync(scenario)()


def test_a_stream_goes_on_while_the_user_keeps_access(cast, monkeypatch):
    from deployments import views

    monkeypatch.setattr(views, "SSE_ACCESS_RECHECK_SECONDS", 0.05)
    monkeypatch.setattr(views, "SSE_POLL_SECONDS", 0.05)
    d = _deploy(cast, Deploy.Status.BUILDING, "one", finished_ago=None)
    client = _client(cast.viewer)

    async def scenario():
        resp = await client.get(f"/deploys/{d.pk}/logs/stream")
        reader = Reader(resp)
        await reader.events("line", 1)
        await asyncio.sleep(0.5)  # several re-checks
        await sync_to_async(lambda: logstream.DeployLog(Deploy.objects.get(pk=d.pk))("two"))()
        assert [e["data"]["text"] for e in await reader.events("line", 1)] == ["two"]
        assert not reader.ended
        await resp.aclose() if hasattr(resp, "aclose") else None

    async_to_sync(scenario)()
