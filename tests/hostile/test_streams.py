"""A log position from the URL or Last-Event-ID (`?after=`) is ASCII digits or the start of the
log: `²` (isdigit() but not int()-able) or 5000 digits broke the SSE view and the websocket."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from deployments.models import Deploy
from tests import base
from tests.deployments.test_consumers import ORIGIN, _connect, _lines_then_summary, _session
from tests.deployments.test_sse import Reader, _client, _deploy

pytestmark = pytest.mark.django_db(transaction=True)
cast = base.cast

HOSTILE = ["\u00b2", "\u0664\u0662", "9" * 5000, "9" * 30, "-1", "1e3", "%00", "1%0A", "0x2"]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# A header carries latin-1 only; the query string carries anything (percent-encoded).
CURSORS = [(a, "query") for a in HOSTILE] + [
    (a, "header") for a in HOSTILE if a.encode("latin-1", "ignore").decode("latin-1") == a
]


@pytest.mark.parametrize(("after", "how"), CURSORS)
def test_the_sse_stream_replays_from_the_start_on_a_bad_position(cast, after, how):
    d = _deploy(cast, Deploy.Status.FAILED, "one", "two")
    client = _client(cast.owner)

    async def scenario():
        if how == "query":
            resp = await client.get(f"/deploys/{d.pk}/logs/stream?after={after}")
        else:
            resp = await client.get(
                f"/deploys/{d.pk}/logs/stream", headers={"Last-Event-ID": after}
            )
        assert resp.status_code == 200
        events = await Reader(resp).rest()
        assert [e["id"] for e in events if e.get("event") == "line"] == ["1", "2"]

    async_to_sync(scenario)()


@pytest.mark.parametrize("after", HOSTILE)
def test_the_websocket_replays_from_the_start_on_a_bad_position(cast, after):
    d = _deploy(cast, Deploy.Status.BUILDING, "one", "two", finished_ago=None)

    session = _session(cast.owner)

    async def scenario():
        comm = _connect(d, [ORIGIN, session], f"?after={after}")
        connected, _ = await comm.connect()
        assert connected
        seqs, summary = await _lines_then_summary(comm)
        assert seqs == [1, 2] and 'id="summary"' in summary
        await comm.disconnect()

    async_to_sync(scenario)()
