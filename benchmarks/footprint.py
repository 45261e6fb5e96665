"""Issue 16 item 6: memory and CPU of the control plane at rest, as `make run` starts it
(`python -m koyra.serve ... koyra.asgi:application`, daphne, and `manage.py worker`), with 50
apps.

A throwaway SQLite database with 50 apps (and a live deploy each), the web process asked for
what a user loads (the login page, then, logged in, the apps list and an app page, which ask
the engine for replica counts), so it has loaded what serving pages loads; then both left idle
for 60 s:
the worker still sweeps the database every 10 s. RSS and PSS (shared pages divided among the
processes sharing them) at the end, CPU over the 60 s. Target: < 150 MiB RSS in total and
< 1 % of a core.

Run: .venv/bin/python benchmarks/footprint.py [--seconds 60]"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from _common import ROOT, write_section

TARGET_MIB, TARGET_CPU = 150, 1.0
ASGI_APP = "koyra.asgi:application"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """The process and its descendants (the worker's work horse, if one runs)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return out


def _cpu(pid: int) -> float:
    total = 0.0
    for p in _tree(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _mem_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB of the process and its descendants."""
    rss = pss = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def _browse(base: str, password: str) -> None:
    """What a user loads: the login page, the login itself, the apps list and an app page."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(f"{base}/accounts/login/") as r:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', r.read().decode())
    assert token, "no CSRF token on the login page"
    form = {"username": "bench", "password": password, "csrfmiddlewaretoken": token[1]}
    req = urllib.request.Request(
        f"{base}/accounts/login/",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Referer": f"{base}/accounts/login/"},
    )
    with opener.open(req) as r:
        assert r.url.endswith("/apps/"), f"login failed: ended on {r.url}"
    for path in ("/apps/", "/apps/idle-00/"):
        with opener.open(f"{base}{path}") as r:
            assert r.status == 200 and b"idle-00" in r.read(), path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from cryptography.fernet import Fernet

    data = tempfile.mkdtemp(prefix="koyra-bench-footprint-")
    env = {
        **os.environ,
        "KOYRA_DATA_DIR": data,
        "SECRET_KEY": "bench-only",
        "KOYRA_FERNET_KEYS": Fernet.generate_key().decode(),
        "REDIS_URL": "redis://127.0.0.1:6379/9",
        "DJANGO_SETTINGS_MODULE": "koyra.settings",
    }
    env.pop("DATABASE_URL", None)
    py = str(ROOT / ".venv/bin/python")
    subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    password = secrets.token_urlsafe(16)
    seed = (
        "from django.contrib.auth.models import User\n"
        f"User.objects.create_superuser('bench', password='{password}')\n"
        "from apps.services import app_create\n"
        "from deployments.models import Deploy\n"
        f"for i in range({args.apps}):\n"
        "    app, _ = app_create(name=f'idle-{i:02d}', repo_url=f'https://github.com/a/idle-{i}')\n"
        f"    Deploy.objects.create(app=app, commit='{secrets.token_hex(20)}', trigger='push',"
        " status='live')\n"
    )
    subprocess.run([py, "manage.py", "shell", "-c", seed], cwd=ROOT, env=env, check=True)
    port = _free_port()
    procs = {
        "web (daphne)": subprocess.Popen(
            [py, "-m", "koyra.serve", "-b", "127.0.0.1", "-p", str(port), ASGI_APP],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        "worker (rqworker)": subprocess.Popen(
            [py, "manage.py", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    }
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/") as r:
                    assert r.status == 200
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("daphne did not answer within 60 s") from None
                time.sleep(0.5)
        _browse(f"http://127.0.0.1:{port}", password)
        time.sleep(12)  # the worker's first sweep (every 10 s) done
        cpu0 = {k: _cpu(p.pid) for k, p in procs.items()}
        time.sleep(args.seconds)
        cpu = {k: (_cpu(p.pid) - cpu0[k]) / args.seconds * 100 for k, p in procs.items()}
        mem = {k: _mem_kib(p.pid) for k, p in procs.items()}
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:  # a worker caught between its signal handlers
                p.kill()
                p.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    rss = sum(m[0] for m in mem.values()) / 1024
    pss = sum(m[1] for m in mem.values()) / 1024
    total_cpu = sum(cpu.values())
    rows = "\n".join(
        f"| {k} | {mem[k][0] / 1024:.1f} | {mem[k][1] / 1024:.1f} | {cpu[k]:.2f} |" for k in procs
    )
    load = os.getloadavg()
    body = f"""
Issue 16 item 6. Web and worker as `make run` starts them, {args.apps} apps with a live deploy
each, SQLite; the web process served the login page, a login, the apps list and an app page
(replica counts from the engine), then both idle for {args.seconds:.0f} s (the worker sweeps
every 10 s). Load average at the end:
{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.

| process | RSS MiB | PSS MiB | CPU % of a core |
|---|---|---|---|
{rows}
| **total** | **{rss:.1f}** | **{pss:.1f}** | **{total_cpu:.2f}** |
"""
    if args.no_write:
        print(body)
    else:
        write_section("Footprint at rest (benchmarks/footprint.py)", body)
    ok = rss < TARGET_MIB and total_cpu < TARGET_CPU
    print(
        f"footprint: {rss:.1f} MiB RSS (target < {TARGET_MIB}), {total_cpu:.2f} % of a core "
        f"(target < {TARGET_CPU:.0f} %): {'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
