"""A repository is untrusted data: whatever it holds, the pipeline reads nothing outside the
checkout, builds nothing, and fails the deploy with a message that names the path.

Each case lays a checkout out (through the git boundary, patched) and runs the real pipeline
with the engine patched; the audit hook (tests/hostile/watch.py) records every file opened."""

from __future__ import annotations

import os
import secrets
import tracemalloc
from pathlib import Path
from unittest.mock import patch

import pytest

from deployments import logstream, pipeline
from deployments.models import Deploy
from tests.factories import AppFactory, DeployFactory
from tests.hostile.watch import opened_files, reads_under

# transaction=True: the pipeline closes stale connections between stages, as in the worker.
pytestmark = pytest.mark.django_db(transaction=True)

CANARY = f"CANARY{secrets.token_hex(8)}"
DOCKERFILE = "FROM scratch\nCOPY . /\n"
BOMB = (
    'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
)


def link(target: str) -> tuple[str, str]:
    return ("link", target)


# id: (files of the checkout, the fragment the deploy's error must contain). "{host}" in a
# link target is a directory outside the checkout holding the canary in every file.
CASES = {
    "dockerignore-to-dev-zero": (
        {"Dockerfile": DOCKERFILE, ".dockerignore": link("/dev/zero")},
        ".dockerignore: must be a regular file, not a symlink",
    ),
    "dockerignore-to-host-file": (
        {"Dockerfile": DOCKERFILE, ".dockerignore": link("{host}/canary.txt")},
        ".dockerignore: must be a regular file, not a symlink",
    ),
    "dockerignore-dangling": (
        {"Dockerfile": DOCKERFILE, ".dockerignore": link("{host}/nothing-here")},
        ".dockerignore: must be a regular file, not a symlink",
    ),
    "dockerignore-to-file-inside": (
        {"Dockerfile": DOCKERFILE, "ignore.txt": "x\n", ".dockerignore": link("ignore.txt")},
        ".dockerignore: must be a regular file, not a symlink",
    ),
    "dockerignore-is-a-directory": (
        {"Dockerfile": DOCKERFILE, ".dockerignore/x": "x"},
        ".dockerignore must be a regular file",
    ),
    "dockerignore-huge": (
        {"Dockerfile": DOCKERFILE, ".dockerignore": "*.log\n" * 20_000},
        ".dockerignore is 120000 bytes; the limit is 64 KiB",
    ),
    "dockerignore-of-a-subdir-context-to-host": (
        {
            ".paas/app.yaml": "build: {context: app}\n",
            "app/Dockerfile": DOCKERFILE,
            "app/.dockerignore": link("{host}/canary.txt"),
        },
        "app/.dockerignore: must be a regular file, not a symlink",
    ),
    "paas-dir-to-host-dir": (
        {"Dockerfile": DOCKERFILE, ".paas": link("{host}/paas")},
        ".paas: must be a regular file, not a symlink",
    ),
    "paas-dir-to-dir-inside": (
        {"Dockerfile": DOCKERFILE, "conf/app.yaml": "run: {port: 80}\n", ".paas": link("conf")},
        ".paas: must be a regular file, not a symlink",
    ),
    "manifest-to-host-file": (
        {"Dockerfile": DOCKERFILE, ".paas/app.yaml": link("{host}/paas/app.yaml")},
        ".paas/app.yaml: must be a regular file, not a symlink",
    ),
    "manifest-to-dev-zero": (
        {"Dockerfile": DOCKERFILE, ".paas/app.yaml": link("/dev/zero")},
        ".paas/app.yaml: must be a regular file, not a symlink",
    ),
    "manifest-to-proc": (
        {"Dockerfile": DOCKERFILE, ".paas/app.yaml": link("/proc/self/environ")},
        ".paas/app.yaml: must be a regular file, not a symlink",
    ),
    "manifest-symlink-loop": (
        {"Dockerfile": DOCKERFILE, ".paas/app.yaml": link("app.yaml")},
        ".paas/app.yaml: must be a regular file, not a symlink",
    ),
    "dockerfile-to-host-file": (
        {"Dockerfile": link("{host}/Dockerfile")},
        "build.dockerfile: ./Dockerfile points outside the repository",
    ),
    "dockerfile-to-dev-zero": (
        {"Dockerfile": link("/dev/zero")},
        "build.dockerfile: ./Dockerfile points outside the repository",
    ),
    "dockerfile-loop": (
        {"Dockerfile": link("Dockerfile")},
        "build.dockerfile: ./Dockerfile cannot be resolved",
    ),
    "dockerfile-outside-its-context": (
        {
            ".paas/app.yaml": "build: {context: app}\n",
            "Dockerfile": DOCKERFILE,
            "app/Dockerfile": link("../Dockerfile"),
            "app/index.html": "x",
        },
        "build.dockerfile: Dockerfile resolves outside the build context app",
    ),
    "context-dir-to-host": (
        {".paas/app.yaml": "build: {context: app}\n", "app": link("{host}")},
        "build.context: app points outside the repository",
    ),
    "context-to-root": (
        {".paas/app.yaml": "build: {context: app}\n", "app": link("/")},
        "build.context: app points outside the repository",
    ),
    "context-dotdot": (
        {".paas/app.yaml": "build: {context: ../..}\n", "Dockerfile": DOCKERFILE},
        "build.context: must be a path inside the repository",
    ),
    "dockerfile-absolute": (
        {".paas/app.yaml": "build: {dockerfile: /etc/passwd}\n", "Dockerfile": DOCKERFILE},
        "build.dockerfile: must be a path inside the repository",
    ),
    "context-with-nul": (
        {".paas/app.yaml": 'build: {context: "a\\0b"}\n', "Dockerfile": DOCKERFILE},
        "build.context: contains the control character \\x00",
    ),
    "manifest-alias-bomb": (
        {".paas/app.yaml": BOMB, "Dockerfile": DOCKERFILE},
        "aliases and anchors (*name, &name) are not allowed",
    ),
    "manifest-huge": (
        {".paas/app.yaml": "# padding\n" * 100_000, "Dockerfile": DOCKERFILE},
        ".paas/app.yaml is 1000000 bytes; the limit is 64 KiB",
    ),
    "manifest-duplicate-keys": (
        {".paas/app.yaml": "run:\n  port: 80\n  port: 81\n", "Dockerfile": DOCKERFILE},
        "line 3: not valid YAML: duplicate key 'port' (first on line 2)",
    ),
    "manifest-not-utf8": (
        {".paas/app.yaml": b"env: {A: \xff\xfe}\n", "Dockerfile": DOCKERFILE},
        ".paas/app.yaml: is not UTF-8 text (byte 9)",
    ),
    "manifest-deep-nesting": (
        {".paas/app.yaml": "[" * 30_000 + "]" * 30_000, "Dockerfile": DOCKERFILE},
        "nested deeper than 20 levels",
    ),
}


@pytest.fixture(autouse=True)
def _no_relay(monkeypatch):
    monkeypatch.setattr(logstream, "_send", lambda deploy_id, message: None)


@pytest.fixture
def host(tmp_path) -> Path:
    """A directory of the control plane outside any checkout, every file holding the canary."""
    h = tmp_path / "host"
    (h / "paas").mkdir(parents=True)
    (h / "canary.txt").write_text(f"{CANARY}\n")
    (h / "Dockerfile").write_text(f"FROM scratch\nLABEL leak={CANARY}\n")
    (h / "paas" / "app.yaml").write_text(f"{CANARY}: 1\nenv: {{LEAK: {CANARY}}}\n")
    return h


def _lay_out(dest: Path, files: dict, host: Path) -> None:
    dest.mkdir(parents=True)
    for rel, content in files.items():
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            os.symlink(content[1].format(host=host), p)
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)


def _run(files: dict, host: Path, settings, tmp_path) -> tuple[Deploy, list[str], object, int]:
    settings.KOYRA_WORKSPACE_DIR = tmp_path / "workspaces"

    def clone(url, commit, dest, *args, **kwargs):
        _lay_out(Path(dest), files, host)
        return commit

    deploy = DeployFactory.create(app=AppFactory.create(name="shop"))
    with (
        patch("deployments.boundaries.git.clone_at", side_effect=clone),
        patch("deployments.boundaries.engine.build", autospec=True) as build,
        opened_files() as seen,
    ):
        tracemalloc.start()
        try:
            pipeline.deploy_run(deploy_id=deploy.pk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    deploy.refresh_from_db()
    return deploy, seen, build, peak


@pytest.mark.parametrize(("files", "fragment"), list(CASES.values()), ids=list(CASES))
def test_hostile_repository_content_fails_the_deploy_reading_nothing_outside(
    files, fragment, host, settings, tmp_path
):
    deploy, seen, build, peak = _run(files, host, settings, tmp_path)

    assert deploy.status == Deploy.Status.FAILED, deploy.log_text
    assert fragment in deploy.error
    assert not build.called  # nothing was built
    assert reads_under(seen, str(host), "/dev/zero", "/proc/self/environ") == []
    for text in (deploy.error, deploy.log_text):
        assert CANARY not in text
        assert str(tmp_path) not in text  # no worker path in a message
    assert len(deploy.error) < 600
    assert peak < 32 * 1024**2  # the bomb and the huge file never expand in memory


def test_the_same_layout_with_real_files_builds(host, settings, tmp_path):
    """The control: without the symlinks, the pipeline gets as far as the build."""
    files = {".paas/app.yaml": "build: {context: app}\n", "app/Dockerfile": DOCKERFILE}
    files["app/.dockerignore"] = "*.log\n"
    stop = RuntimeError("stop here")
    with (
        patch("deployments.boundaries.engine.push", side_effect=stop),
        pytest.raises(RuntimeError, match="stop here"),
    ):
        _run(files, host, settings, tmp_path)


def test_the_watch_sees_a_read_through_a_symlink(host, tmp_path):
    """The control for the audit hook: a read of the canary through a link is recorded."""
    (tmp_path / "innocent").symlink_to(host / "canary.txt")
    with opened_files() as seen:
        (tmp_path / "innocent").read_text()
    assert reads_under(seen, str(host)) == [str((host / "canary.txt").resolve())]


def test_a_symlink_elsewhere_in_the_context_is_left_for_the_engine(host, settings, tmp_path):
    """docker-py archives links as links and the engine resolves them inside the context
    (tests/e2e/test_hostile_repos.py builds one): Koyra does not open it."""
    files = {"Dockerfile": DOCKERFILE, "leak": link("{host}/canary.txt")}
    stop = RuntimeError("stop here")
    with (
        patch("deployments.boundaries.engine.push", side_effect=stop),
        opened_files() as seen,
        pytest.raises(RuntimeError, match="stop here"),
    ):
        _run(files, host, settings, tmp_path)
    assert reads_under(seen, str(host)) == []
