"""Hostile repositories through the real worker and the real engine: each deploy fails with a
message naming the path, nothing of the control plane outside the checkout reaches the log or
an image, and the worker stays up with its memory bounded (tests/hostile/ has the unit cases).
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

import pytest
from django.conf import settings

from apps import services as app_services
from deployments import logstream, services
from deployments.boundaries import registry
from deployments.models import Deploy
from secrets_vault import services as vault
from tests.e2e.conftest import httpd_app, wait_deploy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CANARY = f"CANARY{secrets.token_hex(8)}"
# Far above what the worker and its work horse hold (~150 MB each); the alias bomb alone took
# one past 1.5 GB before the manifest refused aliases.
MAX_RSS = 500 * 1024**2
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)

# id: (files, symlinks (path -> target, "{host}" is a directory outside every checkout that
# holds the canary), what the deploy's error says)
CASES = {
    "dockerignore-to-dev-zero": (
        {},
        {".dockerignore": "/dev/zero"},
        ".dockerignore: must be a regular file, not a symlink",
    ),
    "dockerignore-to-host-file": (
        {},
        {".dockerignore": "{host}/canary.txt"},
        ".dockerignore: must be a regular file, not a symlink",
    ),
    "paas-dir-to-host-dir": (
        {},
        {".paas": "{host}/paas"},
        ".paas: must be a regular file, not a symlink",
    ),
    "manifest-to-host-file": (
        {},
        {".paas/app.yaml": "{host}/paas/app.yaml"},
        ".paas/app.yaml: must be a regular file, not a symlink",
    ),
    "dockerfile-to-host-file": (
        {"Dockerfile": None},
        {"Dockerfile": "{host}/Dockerfile"},
        "build.dockerfile: ./Dockerfile points outside the repository",
    ),
    "dockerfile-outside-its-context": (
        {".paas/app.yaml": "build: {context: app}\n", "app/index.html": "x\n"},
        {"app/Dockerfile": "../Dockerfile"},
        "build.dockerfile: Dockerfile resolves outside the build context app",
    ),
    "alias-bomb": (
        {".paas/app.yaml": BOMB},
        {},
        "aliases and anchors (*name, &name) are not allowed",
    ),
    "huge-manifest": (
        {".paas/app.yaml": "# padding\n" * 200_000},
        {},
        ".paas/app.yaml is 2000000 bytes; the limit is 64 KiB",
    ),
    "duplicate-keys": (
        {".paas/app.yaml": "run:\n  port: 8000\n  replicas: 1\n  port: 9000\n"},
        {},
        ".paas/app.yaml, line 4: not valid YAML: duplicate key 'port' (first on line 2)",
    ),
}


@pytest.fixture
def host(tmp_path) -> Path:
    """A directory of the control plane outside any checkout; each file holds the canary."""
    h = tmp_path / "host"
    (h / "paas").mkdir(parents=True)
    (h / "canary.txt").write_text(f"{CANARY}\n")
    (h / "Dockerfile").write_text(f"FROM scratch\nLABEL leak={CANARY}\n")
    (h / "paas" / "app.yaml").write_text(f"{CANARY}: 1\n")
    return h


class MemoryWatch:
    """Samples the resident memory of a process and its descendants (the RQ work horse)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self._tree():
                self.peak = max(self.peak, _rss(pid))
            self._stop.wait(0.02)

    def _tree(self) -> list[int]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += [c for c, p in parents.items() if p == pid]
        return tree


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _lay_out(repo, base: str, files: dict, links: dict, host: Path) -> None:
    app = {**httpd_app(base, "hostile"), **files}
    app = {rel: content for rel, content in app.items() if content is not None}
    for rel, target in links.items():
        p = repo.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target.format(host=host), p)
    repo.commit(app, "hostile")


@pytest.mark.parametrize(("files", "links", "fragment"), CASES.values(), ids=list(CASES))
def test_a_hostile_repository_fails_its_deploy_and_nothing_outside_is_read(
    worker, cluster_ready, unique_name, make_repo, host, docker_client, files, links, fragment
):
    name = unique_name("hostile")
    repo = make_repo()
    _lay_out(repo, cluster_ready["base"], files, links, host)
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")

    with MemoryWatch(worker.pid) as memory:
        d = wait_deploy(services.deploy_create(app=app, trigger="manual"), timeout=120)

    assert d.status == Deploy.Status.FAILED, d.log_text
    assert fragment in d.error
    for text in (d.error, d.log_text):
        assert CANARY not in text
        assert str(settings.KOYRA_WORKSPACE_DIR) not in text  # no worker path in a message
    assert d.image is None  # nothing was built or pushed
    assert docker_client.images.list(name=f"{settings.KOYRA_REGISTRY}/{name}") == []
    assert registry.tags(name) == []
    assert worker.poll() is None  # the worker is alive
    assert 0 < memory.peak < MAX_RSS, memory.peak


def test_a_symlink_inside_the_context_is_built_as_a_link_and_long_lines_are_cut(
    worker, cluster_ready, unique_name, make_repo, host, docker_client
):
    """Allowed, and harmless: docker-py archives a link as a link and the engine resolves it
    inside the context, so the image holds a dangling link, never the host's file. The build
    prints a 3 MB line: the log stores its start and says so."""
    name = unique_name("hostile")
    repo = make_repo()
    extra = (
        # {name}: never a cached layer, whose output a build does not print again
        f"RUN echo {name}; head -c 3000000 /dev/zero | tr '\\0' a; echo\n"
        "COPY . /src\n"
        "RUN cat /src/leak || echo leak-unreadable\n"
    )
    os.symlink(host / "canary.txt", repo.path / "leak")
    repo.commit(httpd_app(cluster_ready["base"], "linked", extra_run=extra), "linked")
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")

    with MemoryWatch(worker.pid) as memory:
        d = wait_deploy(services.deploy_create(app=app, trigger="manual"))

    assert d.status == Deploy.Status.LIVE, d.log_text
    assert CANARY not in d.log_text
    assert "leak-unreadable" in d.log_text
    longest = max(len(t) for t in d.log_lines.values_list("text", flat=True))
    assert logstream.MAX_LINE < longest < logstream.MAX_LINE + 100
    assert "more characters of this line not stored" in d.log_text
    out = docker_client.containers.run(
        d.image.ref,
        ["sh", "-c", "ls -l /src/leak; cat /src/leak; cat /src/* /www/* 2>/dev/null; true"],
        remove=True,
        stderr=True,
    ).decode()
    assert "/src/leak ->" in out  # a link, as committed
    assert CANARY not in out
    assert worker.poll() is None
    assert memory.peak < MAX_RSS, memory.peak


def test_a_pem_secret_reaches_the_app_byte_for_byte(
    worker, cluster_ready, unique_name, make_repo, docker_client
):
    """Trailing newlines included (`$(cat file)` alone strips them), through the image's own
    shell (busybox here), the start wrapper being the task's PID 1."""
    name = unique_name("pem")
    repo = make_repo()
    files = httpd_app(cluster_ready["base"], "pem", manifest="secrets: [PEM]\n")
    files["Dockerfile"] = files["Dockerfile"].replace(
        'CMD ["httpd", "-f", "-p", "8000", "-h", "/www"]',
        'CMD ["sh", "-c", "printf %s \\"$PEM\\" > /tmp/pem; exec httpd -f -p 8000 -h /www"]',
    )
    repo.commit(files, "pem")
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    pem = f"-----BEGIN KEY-----\n{secrets.token_hex(24)}\n-----END KEY-----\n\n"
    vault.secret_set(app=app, key="PEM", value=pem)

    d = wait_deploy(services.deploy_create(app=app, trigger="manual"))

    assert d.status == Deploy.Status.LIVE, d.log_text
    container = wait_for(
        lambda: docker_client.containers.list(filters={"label": f"koyra.deploy={d.pk}"}),
        30,
        "the task container",
    )[0]
    out = container.exec_run(["cat", "/tmp/pem"])
    assert out.exit_code == 0
    assert out.output == pem.encode()
