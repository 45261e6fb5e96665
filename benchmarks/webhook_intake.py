"""Issue 16 item 3: webhook intake through daphne on loopback, as `make run` starts it
(`python -m koyra.serve -b 127.0.0.1 -p PORT koyra.asgi:application`, daphne's own command
line; SQLite in WAL mode, Redis up).

Signed `push` deliveries shaped like GitHub's (about 7 KB: repository, pusher, sender,
commits, head_commit), each on a new connection as GitHub sends them, at a fixed rate (open
loop: a slow answer does not slow the sender down, and each answer's time is counted from the
moment its request was due, so a backlog shows). Target: p99 < 50 ms at 200 a second for 20 s,
no error, every delivery recorded (an accepted WebhookDelivery and a queued Deploy each, and
each deploy's job in Redis). No worker runs: the jobs stay in the bench's own Redis database,
which is emptied at the end.

Run: .venv/bin/python benchmarks/webhook_intake.py [--rate 200] [--seconds 20] [--runs 3]
(each run starts its own daphne on a fresh database; the target is judged on the median run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import ROOT, percentile, write_section

TARGET_P99 = 0.050
APPLICATION = "koyra.asgi:application"
URL_FIELDS = (
    "forks keys collaborators teams hooks issue_events events assignees branches tags blobs "
    "git_tags git_refs trees statuses languages stargazers contributors subscribers "
    "subscription commits git_commits comments issue_comment contents compare merges archive "
    "downloads issues pulls milestones notifications labels releases deployments"
)
WARMUP = 20  # deliveries before the measured ones (daphne's first request loads the URLconf)
GITHUB_TIMEOUT = 10  # seconds: GitHub gives up on a delivery then (and marks it failed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def push_payload(name: str, after: str) -> dict:
    """A push event as GitHub sends it (the fields and sizes of a real one, one commit)."""
    owner = {
        "name": "acme",
        "email": None,
        "login": "acme",
        "id": 1234567,
        "node_id": "MDEyOk9yZ2FuaXphdGlvbjEyMzQ1Njc=",
        "avatar_url": "https://avatars.githubusercontent.com/u/1234567?v=4",
        "gravatar_id": "",
        "url": "https://api.github.com/users/acme",
        "html_url": "https://github.com/acme",
        "type": "Organization",
        "site_admin": False,
    }
    repo = f"https://github.com/acme/{name}"
    api = f"https://api.github.com/repos/acme/{name}"
    repository = {
        "id": 456789012,
        "node_id": "R_kgDOGzAbCd",
        "name": name,
        "full_name": f"acme/{name}",
        "private": True,
        "owner": owner,
        "html_url": repo,
        "description": "The shop's storefront",
        "fork": False,
        "url": repo,
        **{f"{k}_url": f"{api}/{k}{{/x}}" for k in URL_FIELDS.split(" ")},
        "created_at": 1700000000,
        "updated_at": "2026-11-20T10:00:00Z",
        "pushed_at": int(time.time()),
        "git_url": f"git://github.com/acme/{name}.git",
        "ssh_url": f"git@github.com:acme/{name}.git",
        "clone_url": f"{repo}.git",
        "svn_url": repo,
        "homepage": None,
        "size": 2048,
        "stargazers_count": 3,
        "watchers_count": 3,
        "language": "Python",
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": False,
        "has_pages": False,
        "forks_count": 0,
        "archived": False,
        "disabled": False,
        "open_issues_count": 4,
        "license": None,
        "allow_forking": False,
        "topics": [],
        "visibility": "private",
        "default_branch": "main",
        "stargazers": 3,
        "master_branch": "main",
        "organization": "acme",
    }
    person = {"name": "Dev One", "email": "dev@example.com", "username": "devone"}
    commit = {
        "id": after,
        "tree_id": secrets.token_hex(20),
        "distinct": True,
        "message": "Checkout: show the delivery date on the summary page",
        "timestamp": "2026-11-26T10:00:00+00:00",
        "url": f"{repo}/commit/{after}",
        "author": person,
        "committer": person,
        "added": [],
        "removed": [],
        "modified": ["shop/templates/checkout/summary.html", "shop/views/checkout.py"],
    }
    return {
        "ref": "refs/heads/main",
        "before": secrets.token_hex(20),
        "after": after,
        "repository": repository,
        "pusher": {"name": "devone", "email": "dev@example.com"},
        "organization": {"login": "acme", "id": 1234567, "url": "https://api.github.com/orgs/acme"},
        "sender": {**owner, "login": "devone", "id": 7654321, "type": "User"},
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"{repo}/compare/{after[:12]}...{after[:12]}",
        "commits": [commit],
        "head_commit": commit,
    }


def _requests(name: str, secret: str, port: int, n: int) -> list[bytes]:
    sys.path.insert(0, str(ROOT))
    from deployments.webhooks import github

    out = []
    for _ in range(n):
        body = json.dumps(push_payload(name, secrets.token_hex(20))).encode()
        head = (
            f"POST /webhooks/github/{name}/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "User-Agent: GitHub-Hookshot/bench\r\n"
            "Accept: */*\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "X-GitHub-Event: push\r\n"
            f"X-GitHub-Delivery: {uuid.uuid4()}\r\n"
            "X-GitHub-Hook-ID: 123456789\r\n"
            f"X-Hub-Signature-256: {github.signature(secret, body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def _send(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()  # to the end: Connection: close
        return int(status_line.split()[1])
    finally:
        writer.close()


async def _load(port: int, requests: list[bytes], rate: float) -> list[tuple[float, int | str]]:
    """Each request at its due time; (seconds from due to the whole answer, status or error)."""
    results: list[tuple[float, int | str]] = [(0.0, "not sent")] * len(requests)
    start = time.perf_counter() + 0.1

    async def one(i: int) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            status: int | str = await asyncio.wait_for(_send(port, requests[i]), GITHUB_TIMEOUT)
        except (OSError, TimeoutError, IndexError, ValueError) as exc:
            status = type(exc).__name__
        results[i] = (time.perf_counter() - due, status)

    await asyncio.gather(*(one(i) for i in range(len(requests))))
    return results


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_listening(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"daphne exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("daphne did not listen within 60 s")


def _profiler(pid: int) -> subprocess.Popen | None:
    """With KOYRA_BENCH_PYSPY=<py-spy binary>:<output file>: py-spy samples daphne (every
    thread, idle ones left out) during the measured deliveries, as collapsed stacks."""
    spec = os.environ.get("KOYRA_BENCH_PYSPY")
    if not spec:
        return None
    binary, _, out = spec.partition(":")
    return subprocess.Popen(
        [
            binary,
            "record",
            "-p",
            str(pid),
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            out,
            "--threads",
            "--gil",
        ]
    )


def _manage(env: dict[str, str], code: str) -> str:
    """Run `code` in a Django shell of the bench's configuration; its stdout."""
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def one_run(rate: float, seconds: float, redis_url: str) -> dict:
    from cryptography.fernet import Fernet

    data = tempfile.mkdtemp(prefix="koyra-bench-intake-")
    env = {
        **os.environ,
        "KOYRA_DATA_DIR": data,
        "SECRET_KEY": "bench-only",
        "KOYRA_FERNET_KEYS": Fernet.generate_key().decode(),
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "koyra.settings",
    }
    # SQLite in the data dir, as `make run`; KOYRA_BENCH_DATABASE_URL: an empty database of
    # another kind (PostgreSQL), migrated and written to by the run.
    env.pop("DATABASE_URL", None)
    if os.environ.get("KOYRA_BENCH_DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["KOYRA_BENCH_DATABASE_URL"]
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    name = f"bench-{secrets.token_hex(3)}"
    secret = _manage(
        env,
        "from apps.services import app_create\n"
        f"print(app_create(name={name!r}, repo_url='https://github.com/acme/{name}.git')[1])",
    ).splitlines()[-1]
    port = _free_port()
    n = int(rate * seconds)
    requests = _requests(name, secret, port, WARMUP + n)
    log = open(Path(data) / "daphne.log", "w")  # noqa: SIM115 (closed below)
    daphne = subprocess.Popen(
        [sys.executable, "-m", "koyra.serve", "-b", "127.0.0.1", "-p", str(port), APPLICATION],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,  # a file: a pipe nobody reads fills up and blocks daphne's logging
    )
    try:
        _wait_listening(port, daphne)
        warm = asyncio.run(_load(port, requests[:WARMUP], 20))
        spy = _profiler(daphne.pid)
        cpu0, t0 = _cpu_seconds(daphne.pid), time.perf_counter()
        results = asyncio.run(_load(port, requests[WARMUP:], rate))
        wall, cpu = time.perf_counter() - t0, _cpu_seconds(daphne.pid) - cpu0
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    finally:
        daphne.terminate()
        daphne.wait(30)
        log.close()
        err = (Path(data) / "daphne.log").read_text()
    counts = json.loads(
        _manage(
            env,
            "import json, django_rq\n"
            "from deployments.models import Deploy\n"
            "from deployments.webhooks.models import WebhookDelivery\n"
            "q = django_rq.get_queue('deploys')\n"
            "print(json.dumps({"
            "'accepted': WebhookDelivery.objects.filter(outcome='accepted').count(),"
            "'deliveries': WebhookDelivery.objects.count(),"
            "'deploys': Deploy.objects.filter(status='queued').count(),"
            "'enqueued': Deploy.objects.filter(enqueued__isnull=False).count(),"
            "'jobs': q.count}))\n"
            "q.connection.flushdb()",
        ).splitlines()[-1]
    )
    shutil.rmtree(data, ignore_errors=True)
    times = [t for t, _ in results]
    answered = sum(1 for _, s in results if s == 202)
    errors = [s for _, s in warm + results if s != 202]
    sent = len(warm) + len(results)
    return {
        "n": n,
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "p99": percentile(times, 99),
        "max": max(times),
        "errors": errors,
        "sent": sent,
        "complete": all(counts[k] == sent for k in ("accepted", "deliveries", "deploys", "jobs"))
        and counts["enqueued"] == sent,
        "counts": counts,
        # per delivery handled in the window (answered, or still handled after GitHub gave up)
        "cpu_ms": cpu / max(counts["accepted"] - WARMUP, 1) * 1000,
        "answered_per_s": answered / wall,
        "wall": wall,
        "stderr_tail": "\n".join(err.splitlines()[-5:]) if errors else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md")
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        r = one_run(args.rate, args.seconds, args.redis)
        runs.append(r)
        print(
            f"run {i + 1}: p50 {r['p50'] * 1000:.1f} ms, p95 {r['p95'] * 1000:.1f} ms, "
            f"p99 {r['p99'] * 1000:.1f} ms, max {r['max'] * 1000:.1f} ms, "
            f"errors {len(r['errors'])}, recorded {r['counts']}, "
            f"daphne CPU {r['cpu_ms']:.2f} ms/delivery, {r['answered_per_s']:.0f} answered/s",
            flush=True,
        )
        if r["stderr_tail"]:
            print(r["stderr_tail"])
    load = os.getloadavg()
    rows = "\n".join(
        f"| {i + 1} | {r['p50'] * 1000:.1f} | {r['p95'] * 1000:.1f} | {r['p99'] * 1000:.1f} | "
        f"{r['max'] * 1000:.1f} | {len(r['errors'])} | "
        f"{r['counts']['accepted']} of {r['sent']} | {r['answered_per_s']:.0f} | "
        f"{r['cpu_ms']:.2f} |"
        for i, r in enumerate(runs)
    )
    median_p99 = statistics.median(r["p99"] for r in runs)
    ok = median_p99 < TARGET_P99 and all(not r["errors"] and r["complete"] for r in runs)
    if not args.no_write:
        write_section(
            "Webhook intake through daphne (benchmarks/webhook_intake.py)",
            f"""
Issue 16 item 3. {args.rate:.0f} signed `push` deliveries a second for {args.seconds:.0f} s
(GitHub's payload shape, ~7 KB, a new connection each, open loop: times from when each was
due) to daphne (`koyra.serve`) on loopback, as `make run` starts it (SQLite, WAL;
Redis up; no worker). {WARMUP} warm-up deliveries first, recorded but not timed. A delivery
not answered within {GITHUB_TIMEOUT} s is an error (GitHub gives up then). Recorded: an accepted
delivery, a queued deploy and its job in Redis for every one sent. Load average at
the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores.

| run | p50 ms | p95 ms | p99 ms | max ms | errors | recorded | answered/s | CPU ms/delivery |
|---|---|---|---|---|---|---|---|---|
{rows}
""",
        )
    verdict = "met" if ok else "MISSED"
    print(
        f"webhook intake p99 (median of {len(runs)} runs): {median_p99 * 1000:.1f} ms "
        f"at {args.rate:.0f}/s, target < {TARGET_P99 * 1000:.0f} ms: {verdict}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
