"""The live log websocket, through the real ASGI application (origin check, session auth,
routing) on the in-memory channel layer, fed by deployments.logstream as the worker feeds it."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils.html import escape

from deployments import logstream
from deployments.models import Deploy, LogLine
from deployments.transitions import transition
from koyra.asgi import application
from tests import base
from tests.factories import DeployFactory

pytestmark = pytest.mark.django_db(transaction=True)
cast = base.cast  # the fixed cast (tests/base.py) as this module's fixture

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def running(cast) -> Deploy:
    d = DeployFactory.create(app=cast.app, status=Deploy.Status.BUILDING)
    log = logstream.DeployLog(d)
    log("one")
    log("two <script>alert(1)</script>")
    return d


def _session(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


def _seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'<div class="ln" data-seq="(\d+)">', html)]


def _connect(deploy: Deploy, headers: list, query: str = "") -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/deploys/{deploy.pk}/{query}", headers=headers)


async def _lines_then_summary(comm) -> tuple[list[int], str]:
    """On connect: one message with the backlog (if any), then the status summary."""
    first = await comm.receive_from()
    if 'id="summary"' in first:
        return [], first
    return _seqs(first), await comm.receive_from()


def _emit(deploy: Deploy, *texts: str):
    """Lines stored and relayed the way the worker does it."""

    def run():
        log = logstream.DeployLog(Deploy.objects.get(pk=deploy.pk))
        for t in texts:
            log(t)

    return database_sync_to_async(run)()


def _stored_but_never_relayed(deploy: Deploy, *seqs: int):
    """Lines in the database that no relay message announced (one lost on the way)."""

    def run():
        for seq in seqs:
            LogLine.objects.create(deploy_id=deploy.pk, seq=seq, text=f"lost {seq}")

    return database_sync_to_async(run)()


@pytest.mark.parametrize("who", ["owner", "member", "viewer", "superuser"])
def test_a_user_who_may_see_the_app_gets_the_backlog_then_live_lines_in_order(cast, running, who):
    headers = [ORIGIN, _session(getattr(cast, who))]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        first = await comm.receive_from()
        assert first.startswith('<div id="log" hx-swap-oob="beforeend">')
        assert _seqs(first) == [1, 2]
        assert "two &lt;script&gt;alert(1)&lt;/script&gt;" in first
        assert "<script>" not in first
        summary = await comm.receive_from()
        assert '<section id="summary"' in summary and 'hx-swap-oob="true"' in summary
        assert '<span id="status" class="badge s-building">building</span>' in summary
        await _emit(running, "three", "four\nfive", "six")
        got = [await comm.receive_from() for _ in range(3)]  # one message per call
        assert [_seqs(m) for m in got] == [[3], [4, 5], [6]]
        assert ">five</div>" in got[1]
        await comm.receive_nothing()
        await comm.disconnect()

    async_to_sync(scenario)()


def test_status_and_stage_changes_are_pushed_and_a_finished_deploy_closes(cast, running):
    headers = [ORIGIN, _session(cast.owner)]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        await _lines_then_summary(comm)

        def push_started():
            d = Deploy.objects.get(pk=running.pk)
            transition(d, Deploy.Status.PUSHING, stage="push")

        await database_sync_to_async(push_started)()
        summary = await comm.receive_from()
        assert '<span id="status" class="badge s-pushing">pushing</span>' in summary
        assert 'data-stage="push"' in summary and "st-push running" in summary

        def goes_live():
            d = Deploy.objects.get(pk=running.pk)
            d.finish_stage("push")
            log, line = logstream.DeployLog(d), "live: every task runs sha256:abc"
            transition(d, Deploy.Status.LIVE, log=log, line=line)

        await database_sync_to_async(goes_live)()
        assert _seqs(await comm.receive_from()) == [3]
        summary = await comm.receive_from()
        assert '<span id="status" class="badge s-live">live</span>' in summary
        assert "st-push done" in summary
        assert await comm.receive_output() == {"type": "websocket.close", "code": 1000}

    async_to_sync(scenario)()


def test_a_reconnect_with_after_gets_only_the_lines_after_it(cast, running):
    headers = [ORIGIN, _session(cast.owner)]

    async def scenario():
        await _emit(running, "three", "four")
        comm = _connect(running, headers, "?after=2")
        assert (await comm.connect())[0]
        seqs, summary = await _lines_then_summary(comm)
        assert seqs == [3, 4]
        await _emit(running, "five")
        assert _seqs(await comm.receive_from()) == [5]
        await comm.disconnect()

        # Nothing new since the last line seen: only the status.
        comm = _connect(running, headers, "?after=5")
        assert (await comm.connect())[0]
        seqs, summary = await _lines_then_summary(comm)
        assert seqs == [] and "s-building" in summary
        await comm.receive_nothing()
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_line_relayed_twice_is_sent_once(cast, running):
    """The consumer joins the group before it reads the backlog: a line stored in between
    arrives from both, and only the first is sent."""

    headers = [ORIGIN, _session(cast.owner)]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        seqs, _ = await _lines_then_summary(comm)
        assert seqs == [1, 2]
        layer = get_channel_layer()
        await layer.group_send(
            logstream.group_name(running.pk),
            {"type": "log.lines", "first": 2, "texts": ["two"]},
        )
        await comm.receive_nothing()
        await _emit(running, "three")
        assert _seqs(await comm.receive_from()) == [3]
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_batch_that_overlaps_what_was_sent_sends_only_its_new_lines(cast, running):
    headers = [ORIGIN, _session(cast.owner)]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        assert (await _lines_then_summary(comm))[0] == [1, 2]

        def stored_then_relayed_with_one_already_sent():
            for seq, text in ((3, "three"), (4, "four")):
                LogLine.objects.create(deploy_id=running.pk, seq=seq, text=text)
            logstream._send(
                running.pk, {"type": "log.lines", "first": 2, "texts": ["two", "three", "four"]}
            )

        await database_sync_to_async(stored_then_relayed_with_one_already_sent)()
        got = await comm.receive_from()
        assert _seqs(got) == [3, 4] and "four" in got and "two" not in got
        await _emit(running, "five", "six")
        assert _seqs(await comm.receive_from()) == [5]
        assert _seqs(await comm.receive_from()) == [6]
        await comm.receive_nothing()
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_batch_of_a_chatty_build_arrives_as_one_message_in_order_and_escaped(cast, running):
    """Inside a build the worker hands lines on in batches: a batch is one websocket message,
    every line of it in order, each escaped as the page escapes it."""
    headers = [ORIGIN, _session(cast.owner)]
    texts = ["<b>three</b>", *(f"n {i} & {i * 7}" for i in range(4, 1500)), "</div>last"]

    def build():
        log = logstream.DeployLog(Deploy.objects.get(pk=running.pk))
        with log.batched():
            for t in texts:
                log(t)

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        assert (await _lines_then_summary(comm))[0] == [1, 2]
        await database_sync_to_async(build)()
        got: list[str] = []
        while len(got) < len(texts):
            html = await comm.receive_from()
            assert html.startswith('<div id="log" hx-swap-oob="beforeend">')
            got += re.findall(r'<div class="ln" data-seq="\d+">(.*?)</div>', html)
            assert _seqs(html) == list(range(len(got) - len(_seqs(html)) + 3, len(got) + 3))
        assert got == [escape(t) for t in texts]
        await comm.receive_nothing()
        await comm.disconnect()

    async_to_sync(scenario)()


def test_lines_the_channel_layer_dropped_are_filled_from_the_database(cast, running):
    headers = [ORIGIN, _session(cast.owner)]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        await _lines_then_summary(comm)
        await _stored_but_never_relayed(running, 3, 4)
        await _emit(running, "five")
        got = await comm.receive_from()
        assert _seqs(got) == [3, 4, 5] and "lost 4" in got
        await comm.disconnect()

    async_to_sync(scenario)()


def test_lines_the_relay_lost_arrive_by_the_next_recheck_when_nothing_follows(
    cast, running, monkeypatch
):
    """Redis pub/sub forgets a message sent while a connection was down; when no later line
    shows the gap, the periodic re-check reads it from the database (once)."""
    from deployments import consumers

    monkeypatch.setattr(consumers, "ACCESS_RECHECK_SECONDS", 0.2)
    headers = [ORIGIN, _session(cast.viewer)]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        await _lines_then_summary(comm)
        await _stored_but_never_relayed(running, 3, 4)
        got = await comm.receive_from(timeout=3)
        assert _seqs(got) == [3, 4] and "lost 4" in got
        assert await comm.receive_nothing(timeout=0.6)  # rechecked, nothing sent twice
        await _emit(running, "five")
        assert _seqs(await comm.receive_from()) == [5]
        await comm.disconnect()

    async_to_sync(scenario)()


@pytest.mark.parametrize("status", Deploy.FINISHED)
def test_a_final_status_the_relay_lost_still_ends_the_socket(cast, running, monkeypatch, status):
    """The deploy ended and neither its last lines nor its final status reached this socket:
    the re-check sends the lines, then the final summary, and closes (the page does not say
    "following live" forever)."""
    from deployments import consumers

    monkeypatch.setattr(consumers, "ACCESS_RECHECK_SECONDS", 0.2)
    headers = [ORIGIN, _session(cast.owner)]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        await _lines_then_summary(comm)

        def finished_unheard():
            LogLine.objects.create(deploy_id=running.pk, seq=3, text="the end")
            Deploy.objects.filter(pk=running.pk).update(status=status)

        await database_sync_to_async(finished_unheard)()
        assert _seqs(await comm.receive_from(timeout=3)) == [3]
        summary = await comm.receive_from(timeout=3)
        assert f'data-status="{status}" data-finished' in summary
        assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": 1000}
        # Its status event arriving late changes nothing: the socket is closed once.
        layer = get_channel_layer()
        await layer.group_send(
            logstream.group_name(running.pk),
            {"type": "deploy.status", "status": status, "stages": {}, "error": ""},
        )
        assert await comm.receive_nothing(timeout=0.5)

    async_to_sync(scenario)()


@pytest.mark.parametrize("who", ["outsider", "staff", None])  # staff: is_staff gives nothing
def test_a_user_who_may_not_see_the_app_is_refused(cast, running, who):
    headers = [ORIGIN] + ([_session(getattr(cast, who))] if who else [])

    async def scenario():
        comm = _connect(running, headers)
        assert await comm.connect() == (False, 4403)

    async_to_sync(scenario)()


def test_an_unknown_deploy_is_refused(cast):
    missing = Deploy(pk=999999)
    headers = [ORIGIN, _session(cast.superuser)]

    async def scenario():
        comm = _connect(missing, headers)
        assert await comm.connect() == (False, 4403)

    async_to_sync(scenario)()


@pytest.mark.parametrize("origin", [b"http://evil.example", b"null", None])
def test_another_origin_is_refused(cast, running, origin):
    headers = [_session(cast.owner)] + ([(b"origin", origin)] if origin else [])

    async def scenario():
        comm = _connect(running, headers)
        connected, _ = await comm.connect()
        assert not connected

    async_to_sync(scenario)()


# --- access re-checked on an open socket (apps.access; issue 11) ------------------------------


@pytest.mark.parametrize("how", ["revoke_access", "demoted_owner", "deactivated"])
def test_a_user_who_loses_access_while_connected_is_closed(cast, running, monkeypatch, how):
    from apps import access
    from deployments import consumers

    monkeypatch.setattr(consumers, "ACCESS_RECHECK_SECONDS", 0.2)
    user = cast.owner if how == "demoted_owner" else cast.member

    def lose():
        if how == "deactivated":
            type(user).objects.filter(pk=user.pk).update(is_active=False)
        else:
            access.revoke(app=cast.app, user=user)

    headers = [ORIGIN, _session(user)]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        await _lines_then_summary(comm)
        await database_sync_to_async(lose)()
        out = await comm.receive_output(timeout=3)
        assert out == {"type": "websocket.close", "code": 4403}
        # Nothing more reaches it: the line below is not sent to the closed socket.
        await _emit(running, "after revocation")
        assert await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_user_who_keeps_access_stays_connected(cast, running, monkeypatch):
    from deployments import consumers

    monkeypatch.setattr(consumers, "ACCESS_RECHECK_SECONDS", 0.1)

    headers = [ORIGIN, _session(cast.viewer)]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        await _lines_then_summary(comm)
        assert await comm.receive_nothing(timeout=0.6)  # several re-checks, all fine
        await _emit(running, "three")
        assert _seqs(await comm.receive_from()) == [3]
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_status_message_is_not_sent_to_a_user_who_lost_access(cast, running, monkeypatch):
    """The status re-check: even before the periodic one, a status change closes instead."""
    from apps import access
    from deployments import consumers

    monkeypatch.setattr(consumers, "ACCESS_RECHECK_SECONDS", 3600)

    headers = [ORIGIN, _session(cast.member)]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        await _lines_then_summary(comm)
        await database_sync_to_async(access.revoke)(app=cast.app, user=cast.member)

        def push_started():
            transition(Deploy.objects.get(pk=running.pk), Deploy.Status.PUSHING, stage="push")

        await database_sync_to_async(push_started)()
        out = await comm.receive_output(timeout=3)
        assert out == {"type": "websocket.close", "code": 4403}
        await comm.disconnect()

    async_to_sync(scenario)()


@pytest.mark.parametrize("who,cancel", [("viewer", False), ("member", True)])
def test_the_pushed_summary_shows_cancel_only_to_who_may_deploy(cast, running, who, cancel):
    headers = [ORIGIN, _session(getattr(cast, who))]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        _, summary = await _lines_then_summary(comm)
        assert (f"/apps/shop/deploys/{running.pk}/cancel/" in summary) == cancel
        await comm.disconnect()

    async_to_sync(scenario)()


@pytest.mark.parametrize("status", Deploy.FINISHED)
def test_a_socket_opened_after_the_deploy_finished_is_closed_after_the_summary(
    cast, running, status
):
    """The page was rendered while the deploy ran and the socket connected once it had ended:
    its final status event went by before the socket joined the group. Without a close here
    the page would say "following live" until reloaded (issue 15)."""
    headers = [ORIGIN, _session(cast.owner)]
    Deploy.objects.filter(pk=running.pk).update(status=status)

    async def scenario():
        comm = _connect(running, headers, "?after=1")
        assert (await comm.connect())[0]
        seqs, summary = await _lines_then_summary(comm)
        assert seqs == [2]
        assert f'data-status="{status}" data-finished' in summary
        # The "Deploy #N queued." banner of the page is deleted along.
        assert '<ul id="progress" hx-swap-oob="delete"></ul>' in summary
        assert await comm.receive_output() == {"type": "websocket.close", "code": 1000}

    async_to_sync(scenario)()


def test_a_running_deploys_summary_keeps_the_progress_banner(cast, running):
    headers = [ORIGIN, _session(cast.owner)]

    async def scenario():
        comm = _connect(running, headers)
        assert (await comm.connect())[0]
        _, summary = await _lines_then_summary(comm)
        assert "data-finished" not in summary and 'id="progress"' not in summary
        await comm.receive_nothing()
        await comm.disconnect()

    async_to_sync(scenario)()
