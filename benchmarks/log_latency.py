"""How fast a log line reaches a dashboard viewer. A separate writer process (as the worker
is) stores lines with deployments.logstream.DeployLog, which relays each over the Redis channel
layer; the websocket consumer of the real ASGI app (session auth, origin check) renders and
sends them. Paced lines give the latency (each line carries its write time); a burst gives
the throughput, with every line accounted for once and in order. Target: p99 well under 1 s.
Then (issue 16 item 4) BUILD_RUNS real builds of N_BUILD lines through engine.build in a
writer process, a viewer connected: p95 from the writer reading a line to the viewer < 200 ms,
no line lost, and the build at most 5 % slower than a plain `docker build` of the same
Dockerfile; exits 1 when missed.

Run: .venv/bin/python benchmarks/log_latency.py (needs Redis and a Docker engine)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from html import escape as html_escape
from pathlib import Path

from _common import percentile, setup_django, write_section

setup_django()
# The channel layer logs each relay it drops for a full viewer channel (the consumer then
# fills the gap from the database): thousands of lines during a burst.
logging.getLogger("channels_redis").setLevel(logging.WARNING)

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
N_BUILD, BUILD_RUNS = 10_000, 3
LINE = re.compile(r'data-seq="(\d+)".*?(?:t=([0-9.]+))?<', re.S)


def writer(deploy_id: int, n: int, pace: float) -> None:
    """The worker's side: store n lines, each stamped with its write time."""
    log = logstream.DeployLog(Deploy.objects.get(pk=deploy_id))
    for i in range(n):
        log.line(f"line {i} t={time.time():.6f} " + "x" * 60)
        if pace:
            time.sleep(pace)


def build_writer(deploy_id: int, context: str, out: str) -> None:
    """The worker's side of a real build: engine.build as the pipeline calls it (lines handed
    to DeployLog in batches); records when each line was read from the engine's stream."""
    from deployments.boundaries import engine

    log = logstream.DeployLog(Deploy.objects.get(pk=deploy_id))
    read: list[tuple[str, float]] = []

    def on_line(text: str) -> None:
        read.append((text, time.time()))
        log.line(text)

    tag = f"koyra-bench/loglines:{os.getpid()}"
    t = time.perf_counter()
    with log.batched():  # as pipeline._build_image
        engine.build(
            context=context,
            dockerfile="Dockerfile",
            tag=tag,
            buildargs={},
            on_line=on_line,
            on_quiet=log.flush,
        )
    seconds = time.perf_counter() - t
    engine.image_remove(tag)
    Path(out).write_text(json.dumps({"seconds": seconds, "read": read}))


def _build_context(tmp: str) -> None:
    from deployments import local_images

    salt = secrets.token_hex(4)  # never cached: every build really runs the RUN step
    Path(tmp, "Dockerfile").write_text(
        f"FROM {local_images.base_image()}\n"
        f"RUN echo {salt} && i=1 && while [ $i -le {N_BUILD} ]; do "
        'echo "n $i $(( i * 7 ))"; i=$((i+1)); done\n'
    )


def _plain_build(tmp: str) -> float:
    """The same Dockerfile by `docker build` (the classic builder, as engine.build), no viewer,
    no Koyra."""
    _build_context(tmp)
    tag = f"koyra-bench/loglines-plain:{os.getpid()}"
    t = time.perf_counter()
    subprocess.run(
        ["docker", "build", "--no-cache", "-t", tag, "."],
        cwd=tmp,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - t
    subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
    return seconds


async def _build_case(session_for) -> tuple[list[float], float, float]:
    """One build of N_BUILD lines watched by a websocket viewer: (latencies, build seconds,
    plain docker build seconds)."""
    deploy, session = await database_sync_to_async(session_for)()
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
    with tempfile.TemporaryDirectory() as tmp:
        plain = await asyncio.to_thread(_plain_build, tmp)
        _build_context(tmp)
        out = Path(tmp, "read.json")
        proc = subprocess.Popen(
            [sys.executable, __file__, "--build-writer", str(deploy.pk), tmp, str(out)],
            env=os.environ,
        )
        got: dict[int, tuple[str, float]] = {}
        numbered = 0
        while numbered < N_BUILD:  # a lost line ends in a timeout here
            html = await comm.receive_from(timeout=60)
            now = time.time()
            for seq, text in re.findall(r'data-seq="(\d+)"[^>]*>(.*?)<', html, re.S):
                if text.strip().startswith("n ") and int(seq) not in got:
                    numbered += 1
                got.setdefault(int(seq), (text.strip(), now))
        assert proc.wait() == 0, "the build writer failed"
        result = json.loads(out.read_text())
    await comm.disconnect()
    read = result["read"]
    seqs = sorted(got)
    assert seqs == list(range(1, len(seqs) + 1)), "a stored line never reached the viewer"
    shown_at = {text: at for text, at in got.values() if text.startswith("n ")}
    latency = [
        shown_at[html_escape(text.strip())] - at for text, at in read if text.startswith("n ")
    ]
    assert len(latency) == len(shown_at) == N_BUILD, f"{len(shown_at)} of {N_BUILD} lines shown"
    return latency, result["seconds"], plain


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
    latency = [at - stamp for _, at, stamp in paced if stamp is not None]

    started = time.time()
    proc = _spawn(deploy.pk, N_BURST, 0)
    burst = await _receive(comm, N_BURST)
    proc.wait()
    seconds = burst[-1][1] - started  # includes the writer's start-up (about 1 s)
    seqs = [s for s, _, _ in paced + burst]
    assert seqs == list(range(1, N_PACED + N_BURST + 1)), "a line was lost or duplicated"
    await comm.disconnect()

    def another_deploy():
        return (
            Deploy.objects.create(app=deploy.app, trigger="manual", status=Deploy.Status.BUILDING),
            session,
        )

    builds = [await _build_case(another_deploy) for _ in range(BUILD_RUNS)]
    p95s = [percentile(lat, 95) for lat, _, _ in builds]
    slowdowns = [koyra / plain - 1 for _, koyra, plain in builds]
    slow = statistics.median(slowdowns)
    ok = max(p95s) < 0.2 and slow <= 0.05
    build_rows = "\n".join(
        f"| build {i} | {percentile(lat, 50) * 1000:.0f} ms | {percentile(lat, 95) * 1000:.0f} ms"
        f" | {max(lat) * 1000:.0f} ms | {koyra:.2f} s | {plain:.2f} s"
        f" | {(koyra / plain - 1):+.0%} |"
        for i, (lat, koyra, plain) in enumerate(builds, 1)
    )

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

**A build of {N_BUILD:,} lines** (issue 16 item 4): a `RUN` loop prints {N_BUILD:,} numbered
lines as fast as the shell can; a writer process runs `engine.build` as the pipeline does,
each line to `DeployLog`, stamping when it read the line from the engine's stream; a
websocket viewer of the real ASGI app is connected throughout. Latency is from that read to
the viewer receiving the line's HTML. The build's time (engine.build, viewer connected) is
compared with `DOCKER_BUILDKIT=0 docker build --no-cache` of the same Dockerfile (fresh salt
each, so neither is cached), run just before it. Targets: p95 < 200 ms, no line lost, build
slowed by at most 5 %.

| run | p50 | p95 | max | build with viewer | plain `docker build` | slowdown |
|---|---|---|---|---|---|---|
{build_rows}

Every stored line reached the viewer, in order, in every run. Worst p95 {max(p95s) * 1000:.0f} ms;
median slowdown {slow:+.0%}. {"Both targets met." if ok else "TARGET MISSED."}
""",
    )
    print(
        f"build of {N_BUILD} lines: worst p95 {max(p95s) * 1000:.0f} ms, median slowdown "
        f"{slow:+.1%}: {'OK' if ok else 'MISS'}"
    )
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--build-writer"]:
        build_writer(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif sys.argv[1:2] == ["--writer"]:
        writer(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        asyncio.run(main())
