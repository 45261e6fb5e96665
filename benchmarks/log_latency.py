"""How fast a log line reaches a dashboard viewer. A separate writer process (as the worker
is) stores lines with deployments.logstream.DeployLog, which relays each over the Redis channel
layer; the websocket consumer of the real ASGI app (session auth, origin check) renders and
sends them. Paced lines give the latency (each line carries its write time); a burst gives
the throughput, with every line accounted for once and in order. Target: p99 well under 1 s.

Run: .venv/bin/python benchmarks/log_latency.py (needs Redis)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time

from _common import percentile, setup_django, write_section

setup_django()

from channels.db import database_sync_to_async  # noqa: E402
from channels.testing import WebsocketCommunicator  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402

from apps.services import app_create  # noqa: E402
from deployments import logstream  # noqa: E402
from deployments.models import Deploy  # noqa: E402
from koyra.asgi import application  # noqa: E402

N_PACED, PACE = 300, 0.02
N_BURST = 2000
LINE = re.compile(r'data-seq="(\d+)".*?(?:t=([0-9.]+))?<', re.S)


def writer(deploy_id: int, n: int, pace: float) -> None:
    """The worker's side: store n lines, each stamped with its write time."""
    log = logstream.DeployLog(Deploy.objects.get(pk=deploy_id))
    for i in range(n):
        log.line(f"line {i} t={time.time():.6f} " + "x" * 60)
        if pace:
            time.sleep(pace)


def _setup():
    user = get_user_model().objects.create_user("bench", password="bench-password-123")
    app, _ = app_create(
        name=f"bench-log-{int(time.time())}", repo_url="https://github.com/a/b", owner=user
    )
    deploy = Deploy.objects.create(app=app, trigger="manual", status=Deploy.Status.BUILDING)
    client = Client()
    client.force_login(user)
    return deploy, client.cookies["sessionid"].value


def _spawn(deploy_id: int, n: int, pace: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--writer", str(deploy_id), str(n), str(pace)],
        env=os.environ,
    )


async def _receive(comm, count: int) -> list[tuple[int, float, float | None]]:
    """(seq, received at, written at) for `count` lines."""
    got: list[tuple[int, float, float | None]] = []
    while len(got) < count:
        html = await comm.receive_from(timeout=60)
        now = time.time()
        for seq, stamp in re.findall(r'data-seq="(\d+)"[^>]*>.*?t=([0-9.]+)', html, re.S):
            got.append((int(seq), now, float(stamp)))
    return got


async def main() -> None:
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # the bench's own db: no stale groups
    deploy, session = await database_sync_to_async(_setup)()
    comm = WebsocketCommunicator(
        application,
        f"/ws/deploys/{deploy.pk}/",
        headers=[
            (b"origin", b"http://127.0.0.1:8000"),
            (b"cookie", f"sessionid={session}".encode()),
        ],
    )
    connected, _ = await comm.connect()
    assert connected
    await comm.receive_from()  # the status summary

    proc = _spawn(deploy.pk, N_PACED, PACE)
    paced = await _receive(comm, N_PACED)
    proc.wait()
    latency = [at - stamp for _, at, stamp in paced]

    started = time.time()
    proc = _spawn(deploy.pk, N_BURST, 0)
    burst = await _receive(comm, N_BURST)
    proc.wait()
    seconds = burst[-1][1] - started  # includes the writer's start-up (about 1 s)
    seqs = [s for s, _, _ in paced + burst]
    assert seqs == list(range(1, N_PACED + N_BURST + 1)), "a line was lost or duplicated"
    await comm.disconnect()

    rate = f"{seconds:.2f} s ({N_BURST / seconds:.0f} lines/s, writer start-up included)"
    write_section(
        "Live log latency (benchmarks/log_latency.py)",
        f"""
From `DeployLog.line()` in a separate writer process (store in SQLite, relay over the Redis
channel layer) to the line's HTML at a websocket client of the real ASGI application.

| measure | value |
|---|---|
| {N_PACED} lines, one every {PACE * 1000:.0f} ms: p50 | {percentile(latency, 50) * 1000:.1f} ms |
| same, p99 | {percentile(latency, 99) * 1000:.1f} ms |
| burst of {N_BURST} lines, all received | {rate} |

All {N_PACED + N_BURST} lines arrived once and in order, including those the channel layer
dropped when the viewer's channel was full (the consumer fills gaps from the database).
""",
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--writer"]:
        writer(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        asyncio.run(main())
