"""Issue 16, items 1, 5 and 8: Koyra against the same work done by hand with the docker CLI,
side by side in one run, on the same engine, registry and app.

- Push to live (item 1): a signed `push` webhook to Koyra (view, row, Redis, the real worker
  process: clone, build, push, rollout) until the deploy is `live`, against by hand: `git
  clone`, `docker build` (same layer cache), `docker push`, `docker service update --image
  <digest>` waiting for convergence with Docker's default monitor (5 s). Same app, same
  healthcheck (Koyra's default: interval 3 s, timeout 3 s, retries 3, start period 10 s), same
  replicas (1 and 3), start-first. Median of 5 each, the two alternating. Target <= 1.15x.
- Rollback (item 5): `rollback` to the previous release until `live`, against `docker service
  update --image` to the same release's digest. Target <= 1.2x.
- Zero downtime (item 8): requests through Traefik without pause during every Koyra rollout and
  rollback; none may fail. The same requests run during the runs by hand too (to Koyra's app,
  which they do not change), so both sides are timed under the same load.

The engine, registry and Traefik are shared with the e2e suite (a bootstrap with another data
dir replaces the registry login), so every phase holds /tmp/koyra-e2e.lock (under 5 minutes
each) and bootstraps again first. Prints the worst ratio last; exits 1 when a target is missed.
Run: .venv/bin/python benchmarks/rollout_vs_cli.py (not part of CI)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

os.environ.setdefault("KOYRA_HTTP_PORT", "18080")
os.environ.setdefault("KOYRA_ALLOW_FILE_REPOS", "1")
os.environ.setdefault("KOYRA_PRUNE_EVERY_HOURS", "0")
os.environ.setdefault("KOYRA_KEEP_RELEASES", "20")
os.environ.setdefault("KOYRA_DATA_DIR", tempfile.mkdtemp(prefix="koyra-bench-rollout-"))
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")

from _common import ROOT, git, keep_registry_login, setup_django, write_section

setup_django()

from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from apps.services import app_create  # noqa: E402
from deployments import cluster, local_images, services  # noqa: E402
from deployments.boundaries import engine, registry  # noqa: E402
from deployments.models import Deploy  # noqa: E402
from deployments.webhooks import github  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))  # fewer for a smoke run
LOCK = "/tmp/koyra-e2e.lock"
PUSH_TARGET, ROLLBACK_TARGET = 1.15, 1.2
HC = {"interval": 3, "timeout": 3, "retries": 3, "start_period": 10}  # Koyra's default
PROBE = "wget -q -O /dev/null http://127.0.0.1:8000/index.html"
MANIFEST = """\
run:
  port: 8000
  replicas: {replicas}
  healthcheck: {{path: /index.html}}
  domains: [{host}]
"""


def sh(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str = ""):
    return subprocess.run(
        list(args), cwd=cwd, env=env, input=stdin, check=True, capture_output=True, text=True
    ).stdout


@contextlib.contextmanager
def e2e_lock(what: str):
    with open(LOCK, "a") as f:
        t = time.monotonic()
        fcntl.flock(f, fcntl.LOCK_EX)
        print(f"[{what}] lock after {time.monotonic() - t:.0f}s", flush=True)
        try:
            # Whoever held it last may have made another registry login: ours again.
            keep_registry_login()
            assert cluster.cluster_bootstrap(say=lambda s: None), "bootstrap failed"
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Hammer:
    """Requests through Traefik without pause; counts the ones that did not answer 200."""

    def __init__(self, host: str) -> None:
        self.host, self.sent = host, 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        url = f"http://127.0.0.1:{settings.KOYRA_HTTP_PORT}/"
        while not self._stop.is_set():
            req = urllib.request.Request(url, headers={"Host": self.host})
            self.sent += 1
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    resp.read()
            except (urllib.error.URLError, OSError) as exc:
                self.failures.append(repr(exc)[:80])
            time.sleep(0.02)

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Manual:
    """The same app by hand: the docker CLI with its own config dir (Koyra's registry login)."""

    def __init__(self, name: str, repo: Path, replicas: int, work: Path) -> None:
        self.service, self.repo, self.replicas, self.work = f"{name}_web", repo, replicas, work
        self.ref = f"{settings.KOYRA_REGISTRY}/{name}"
        self.env = {**os.environ, "DOCKER_CONFIG": str(work / "docker"), "DOCKER_BUILDKIT": "0"}
        self.digests: list[str] = []

    def login(self) -> None:
        creds = registry.credentials()
        assert creds
        self.docker("login", "-u", creds["username"], "--password-stdin", creds["serveraddress"],
                    stdin=creds["password"])  # fmt: skip

    def docker(self, *args: str, cwd: Path | None = None, stdin: str = "") -> str:
        return sh("docker", *args, cwd=cwd, env=self.env, stdin=stdin)

    def build_push(self, sha: str) -> tuple[str, dict[str, float]]:
        t, steps = time.perf_counter(), {}
        src = self.work / f"src-{sha[:8]}-{secrets.token_hex(2)}"
        sh("git", "clone", "-q", f"file://{self.repo}", str(src))
        sh("git", "-c", "advice.detachedHead=false", "checkout", "-q", sha, cwd=src)
        steps["clone"], t = time.perf_counter() - t, time.perf_counter()
        self.docker("build", "-q", "-t", f"{self.ref}:{sha}", ".", cwd=src)
        steps["build"], t = time.perf_counter() - t, time.perf_counter()
        out = self.docker("push", f"{self.ref}:{sha}")
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", out)
        assert digest, out
        steps["push"] = time.perf_counter() - t
        return f"{self.ref}@{digest.group(1)}", steps

    def create(self, image: str) -> None:
        self.docker(
            "service", "create", "-q", "--detach=false", "--with-registry-auth",
            "--name", self.service, "--replicas", str(self.replicas),
            "--network", settings.KOYRA_NETWORK, "--endpoint-mode", "dnsrr",
            "--update-order", "start-first", "--update-failure-action", "rollback",
            "--rollback-order", "start-first",
            "--health-cmd", PROBE, "--health-interval", f"{HC['interval']}s",
            "--health-timeout", f"{HC['timeout']}s", "--health-retries", str(HC["retries"]),
            "--health-start-period", f"{HC['start_period']}s", image,
        )  # fmt: skip
        self.digests.append(image)

    def update(self, image: str) -> float:
        t = time.perf_counter()
        self.docker("service", "update", "-q", "--detach=false", "--with-registry-auth",
                    "--image", image, self.service)  # fmt: skip
        return time.perf_counter() - t

    def push_to_live(self, sha: str) -> tuple[float, dict[str, float]]:
        t = time.perf_counter()
        image, steps = self.build_push(sha)
        steps["update"] = self.update(image)
        self.digests.append(image)
        return time.perf_counter() - t, steps


class Koyra:
    def __init__(self, name: str, repo: Path) -> None:
        self.name, self.repo, self.host = name, repo, f"{name}.koyra.test"
        self.app, self.secret = app_create(name=name, repo_url=f"file://{repo}", branch="main")
        self.client = Client()

    def webhook(self, sha: str) -> Deploy:
        payload = {
            "ref": "refs/heads/main",
            "before": "0" * 40,
            "after": sha,
            "created": False,
            "deleted": False,
            "repository": {"name": self.name, "full_name": self.app.repo_full_name},
            "head_commit": {"id": sha, "message": "bench"},
        }
        body = json.dumps(payload).encode()
        resp = self.client.post(
            f"/webhooks/github/{self.name}/",
            data=body,
            content_type="application/json",
            headers={
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": github.signature(self.secret, body),
            },
        )
        assert resp.status_code == 202, resp.content
        return Deploy.objects.get(pk=resp.json()["deploy"])

    @staticmethod
    def wait(d: Deploy, t0: float) -> float:
        while True:
            d.refresh_from_db()
            if d.is_finished:
                assert d.status == Deploy.Status.LIVE, f"#{d.pk} {d.status}: {d.error}"
                return time.perf_counter() - t0
            time.sleep(0.05)

    def push_to_live(self, sha: str) -> tuple[float, Deploy]:
        t0 = time.perf_counter()
        d = self.webhook(sha)
        return self.wait(d, t0), d

    def rollback(self) -> tuple[float, Deploy]:
        t0 = time.perf_counter()
        d = services.rollback_create(app=self.app)
        return self.wait(d, t0), d


def stage_split(d: Deploy) -> dict[str, float]:
    """Where a Koyra deploy's time went: queue (row made -> first stage), each stage, and the
    step from the rollout's end to `live`."""
    from datetime import datetime

    st = d.stages
    out = dict(d.stage_seconds())
    first = min(datetime.fromisoformat(s["started"]) for s in st.values())
    out["queue"] = (first - d.created).total_seconds()
    end = datetime.fromisoformat(st["rollout"]["finished"])
    out["to live"] = (d.finished - end).total_seconds() if d.finished else 0.0
    return out


def commit(repo: Path, i: int) -> str:
    (repo / "index.html").write_text(f"release {i} {time.time()}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"release {i}")
    return git(repo, "rev-parse", "HEAD")


def case(replicas: int, base: str, work: Path) -> dict:
    tag = secrets.token_hex(3)
    repo = work / f"repo-{replicas}"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", ".")
    (repo / ".paas").mkdir()
    koyra = Koyra(f"bench-k{replicas}-{tag}", repo)
    (repo / ".paas/app.yaml").write_text(MANIFEST.format(replicas=replicas, host=koyra.host))
    (repo / "Dockerfile").write_text(
        f"FROM {base}\nRUN mkdir -p /www && echo dependencies > /deps.txt\n"
        'COPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8000", "-h", "/www"]\n'
    )
    manual = Manual(f"bench-m{replicas}-{tag}", repo, replicas, work)
    res: dict = {"replicas": replicas, "koyra": [], "manual": [], "stages": [], "steps": []}
    res |= {"k_back": [], "m_back": [], "sent": 0, "failures": []}
    try:
        with e2e_lock(f"replicas={replicas}: first deploys and pushes"):
            manual.login()
            sha = commit(repo, 0)
            shas = [sha]
            koyra.push_to_live(sha)  # cold: not measured
            manual.create(manual.build_push(sha)[0])
            for i in range(1, RUNS + 1):
                sha = commit(repo, i)
                shas.append(sha)
                order = ("koyra", "manual") if i % 2 else ("manual", "koyra")
                for who in order:
                    if who == "koyra":
                        with Hammer(koyra.host) as h:
                            seconds, d = koyra.push_to_live(sha)
                        res["koyra"].append(seconds)
                        res["stages"].append(stage_split(d))
                        res["sent"] += h.sent
                        res["failures"] += h.failures
                    else:
                        # The same requests through Traefik meanwhile (to Koyra's app, which
                        # this does not change): both sides run under the same load.
                        with Hammer(koyra.host) as h:
                            seconds, steps = manual.push_to_live(sha)
                        res["manual"].append(seconds)
                        res["steps"].append(steps)
                        res["sent"] += h.sent
                        res["failures"] += h.failures
                print(f"  push {i}: koyra {res['koyra'][-1]:.1f}s manual "
                      f"{res['manual'][-1]:.1f}s", flush=True)  # fmt: skip
        with e2e_lock(f"replicas={replicas}: rollbacks"):
            for i in range(1, RUNS + 1):
                target = manual.digests[-1 - i]
                for who in ("koyra", "manual") if i % 2 else ("manual", "koyra"):
                    if who == "koyra":
                        with Hammer(koyra.host) as h:
                            seconds, d = koyra.rollback()
                        assert d.commit == shas[-1 - i], (d.commit, shas)  # the same release
                        res["k_back"].append(seconds)
                        res["sent"] += h.sent
                        res["failures"] += h.failures
                    else:
                        with Hammer(koyra.host) as h:
                            res["m_back"].append(manual.update(target))
                        res["sent"] += h.sent
                        res["failures"] += h.failures
                print(f"  rollback {i}: koyra {res['k_back'][-1]:.1f}s manual "
                      f"{res['m_back'][-1]:.1f}s", flush=True)  # fmt: skip
    finally:
        engine.service_remove(koyra.app.service_name)
        engine.service_remove(manual.service)
        for name in (koyra.name, manual.service[:-4]):
            ref = f"{settings.KOYRA_REGISTRY}/{name}"
            tags = sh("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", ref).split()
            if tags:
                subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True, check=False)
            for t in registry.tags(name):
                digest = registry.manifest_digest(name, t)
                if digest:
                    with contextlib.suppress(registry.RegistryError):
                        registry.delete_manifest(name, digest)
    return res


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


HEAD = (
    f"| replicas | push->live Koyra s | by hand s | ratio (<= {PUSH_TARGET}) | rollback Koyra s "
    f"| `service update` s | ratio (<= {ROLLBACK_TARGET}) | failed requests via Traefik |\n"
    "|---|---|---|---|---|---|---|---|"
)


def report(results: list[dict]) -> tuple[float, float, int]:
    rows, where, worst_push, worst_back, failed, sent = [], [], 0.0, 0.0, 0, 0
    for r in results:
        k, m, kb, mb = med(r["koyra"]), med(r["manual"]), med(r["k_back"]), med(r["m_back"])
        worst_push, worst_back = max(worst_push, k / m), max(worst_back, kb / mb)
        failed, sent = failed + len(r["failures"]), sent + r["sent"]
        rows.append(
            f"| {r['replicas']} | {k:.1f} | {m:.1f} | **{k / m:.2f}x** | {kb:.1f} | {mb:.1f} "
            f"| **{kb / mb:.2f}x** | {len(r['failures'])} of {r['sent']} |"
        )
        ks = {s: med([x.get(s, 0.0) for x in r["stages"]]) for s in r["stages"][0]}
        ms = {s: med([x[s] for x in r["steps"]]) for s in r["steps"][0]}
        where.append(
            f"| {r['replicas']} | Koyra | "
            + ", ".join(f"{s} {v:.2f}" for s, v in ks.items())
            + f" |\n| {r['replicas']} | by hand | "
            + ", ".join(f"{s} {v:.2f}" for s, v in ms.items())
            + " |"
        )
        print(f"replicas={r['replicas']} all runs: koyra {r['koyra']} manual {r['manual']} "
              f"rollback koyra {r['k_back']} manual {r['m_back']}")  # fmt: skip
    load = os.getloadavg()
    write_section(
        "Push to live and rollback against the docker CLI (benchmarks/rollout_vs_cli.py)",
        f"""
Issue 16 items 1, 5, 8. Median of {RUNS} each, Koyra and by hand alternating, in one run on
the shared engine (load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on 2
cores, whatever else the machine ran meanwhile included): absolute
seconds vary between runs; the ratios come from runs interleaved under the same load.
Koyra: signed webhook (in-process client) -> row -> Redis -> worker process -> live. By hand:
git clone + checkout, `docker build` (same cache), `docker push`, `docker service update
--image <digest>` (waits for convergence and Docker's 5 s monitor). Same app (busybox httpd),
same healthcheck (interval 3 s, timeout 3 s, retries 3, start period 10 s), start-first.
Requests through Traefik without pause during every run of both sides (the same load on
both; their failures are counted in the last column).

{HEAD}
{chr(10).join(rows)}

Where the time goes (medians, seconds; Koyra's from the deploy's own stage times):

| replicas | who | steps |
|---|---|---|
{chr(10).join(where)}
""",
    )
    return worst_push, worst_back, failed


def main() -> int:
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["testserver"]
    os.environ["KOYRA_REGISTRY_IMAGE"] = settings.KOYRA_REGISTRY_IMAGE = (
        local_images.registry_image()
    )
    os.environ["KOYRA_TRAEFIK_IMAGE"] = settings.KOYRA_TRAEFIK_IMAGE = local_images.traefik_image()
    base = local_images.base_image()
    import django_rq

    django_rq.get_queue("deploys").connection.flushdb()  # the bench's own Redis database
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}"}
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="koyra-bench-cli-") as tmp:
            replicas = [int(r) for r in os.environ.get("BENCH_REPLICAS", "1,3").split(",")]
            results = [case(r, base, Path(tmp)) for r in replicas]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    push, back, failed = report(results)
    ok = push <= PUSH_TARGET and back <= ROLLBACK_TARGET and failed == 0
    print(
        f"push-to-live {push:.2f}x (target <= {PUSH_TARGET}), rollback {back:.2f}x "
        f"(target <= {ROLLBACK_TARGET}), failed requests {failed}: {'OK' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
