"""The end-to-end harness: a real engine in swarm mode, the real registry and Traefik (built
from this machine's packages: nothing can be pulled), real Redis, real git repositories and a
real worker process. Nothing is patched. Everything a test makes has a unique name and is
removed afterwards."""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker
import pytest
from django.conf import settings

from deployments import cluster, local_images, retention
from deployments.boundaries import engine, registry
from tests.git_servers import ServerKeys

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # the thing is not up yet
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http_get(url: str, host: str | None = None, timeout: float = 5) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def via_traefik(host: str, path: str = "/") -> tuple[int, str]:
    return http_get(f"http://127.0.0.1:{settings.KOYRA_HTTP_PORT}{path}", host=host)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """A test that restarts the shared engine goes after every other one: plain containers
    (the probe) do not come back, and services take a while. pytest-django orders tests by
    their use of the database, so a file's name does not decide; this runs after it."""
    items.sort(key=lambda item: item.get_closest_marker("engine_restart") is not None)


@pytest.fixture(scope="session")
def images():
    return {
        "registry": local_images.registry_image(),
        "traefik": local_images.traefik_image(),
        "base": local_images.base_image(),
    }


@pytest.fixture(scope="session")
def cluster_ready(images):
    """bootstrap_cluster against the real engine, with the locally built images."""
    os.environ["KOYRA_REGISTRY_IMAGE"] = settings.KOYRA_REGISTRY_IMAGE = images["registry"]
    os.environ["KOYRA_TRAEFIK_IMAGE"] = settings.KOYRA_TRAEFIK_IMAGE = images["traefik"]
    existed = {
        name: engine.service_get(name) is not None
        for name in (cluster.REGISTRY_SERVICE, cluster.TRAEFIK_SERVICE)
    }
    assert cluster.cluster_bootstrap(say=lambda s: None)
    registry.wait_ready(60)  # with Koyra's login: answers 200 to it, 401 to anyone else
    wait_for(lambda: via_traefik("nothing.koyra.test")[0] == 404, 60, "Traefik to answer")
    yield images
    for name, was_there in existed.items():
        if not was_there:
            engine.service_remove(name)


@pytest.fixture(scope="session")
def docker_client():
    return docker.from_env()


@pytest.fixture(scope="session")
def probe(cluster_ready, docker_client):
    """A container on the overlay network, to call app tasks the way Traefik does."""
    c = docker_client.containers.run(
        cluster_ready["base"],
        ["sleep", "3600"],
        network=settings.KOYRA_NETWORK,
        detach=True,
        name=f"koyra-probe-{secrets.token_hex(3)}",
        labels={"koyra.test": "1"},
    )
    yield Probe(c)
    c.remove(force=True)


class Probe:
    def __init__(self, container) -> None:
        self.container = container

    def get(self, host: str, port: int, path: str = "/") -> str:
        """HTTP GET with nc (busybox wget segfaults on other containers' addresses)."""
        req = f"GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n"
        res = self.container.exec_run(["sh", "-c", f"printf '{req}' | nc -w 3 {host} {port}"])
        return res.output.decode(errors="replace")


@pytest.fixture(scope="session")
def _made_names(cluster_ready, docker_client):
    """Every app name the session used: at its end, their images leave this engine and the
    registry, and the registry collects the garbage, so test runs do not fill the disk."""
    made: list[str] = []
    yield made
    for name in made:
        for image in docker_client.images.list(name=f"{settings.KOYRA_REGISTRY}/{name}"):
            for tag in image.tags:
                with contextlib.suppress(docker.errors.APIError):
                    docker_client.images.remove(tag, force=True)
        for tag in registry.tags(name):
            digest = registry.manifest_digest(name, tag)
            if digest:
                registry.delete_manifest(name, digest)
    if made:
        engine.registry_gc(cluster.REGISTRY_SERVICE, retention.REGISTRY_CONFIG)


@pytest.fixture
def unique_name(_made_names):
    made: list[str] = []

    def make(prefix: str = "t") -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        made.append(name)
        _made_names.append(name)
        return name

    yield make
    for name in made:
        engine.service_remove(f"{name}_web")
        for s in engine.secrets_list(f"koyra.app={name}"):
            wait_for(lambda s=s: engine.secret_remove(s["id"]) or True, 30, "secret removal")


class Repo:
    """A throwaway git repository of a sample app."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"file://{path}"
        self._git("init", "-q", "-b", "main", ".")

    def _git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
        return subprocess.run(
            ["git", *args], cwd=self.path, check=True, env=env, capture_output=True, text=True
        ).stdout.strip()

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        for rel, content in files.items():
            p = self.path / rel
            if content is None:
                p.unlink()
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message)
        return self._git("rev-parse", "HEAD")


@pytest.fixture
def make_repo(tmp_path):
    def make() -> Repo:
        path = tmp_path / f"repo-{secrets.token_hex(3)}"
        path.mkdir()
        return Repo(path)

    return make


def httpd_app(
    base: str, text: str, *, manifest: str | None = None, extra_run: str = ""
) -> dict[str, str]:
    """Files of a sample app: busybox httpd serving `text` on port 8000."""
    dockerfile = (
        f"FROM {base}\n"
        "RUN mkdir -p /www && echo dependencies > /deps.txt\n"
        f"{extra_run}"
        "COPY index.html /www/index.html\n"
        'CMD ["httpd", "-f", "-p", "8000", "-h", "/www"]\n'
    )
    files = {"Dockerfile": dockerfile, "index.html": f"{text}\n"}
    if manifest is not None:
        files[".paas/app.yaml"] = manifest
    return files


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = f"sqlite:///{settings.DATABASES['default']['NAME']}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def git_server_keys(tmp_path_factory) -> ServerKeys:
    """The ssh host key and TLS CA of the test git servers (tests/git_servers.py), made before
    the worker starts: its settings trust them (read once, at process start)."""
    return ServerKeys.make(tmp_path_factory.mktemp("git-server-keys"))


# The e2e worker keeps fewer releases than the default 10, so retention shows with 6 deploys
# of an app rather than 12 (read from the environment, as an operator sets it).
E2E_KEEP_RELEASES = 4


@pytest.fixture(scope="session")
def worker(cluster_ready, django_db_setup, django_db_blocker, tmp_path_factory, git_server_keys):
    """A real `manage.py worker` process (Koyra's RQ worker, as it starts it) on the test
    database."""
    import django_rq

    django_rq.get_queue("deploys").connection.flushdb()
    logfile = tmp_path_factory.mktemp("worker") / "worker.log"
    with open(logfile, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "worker"],
            cwd=ROOT,
            env={
                **_subprocess_env(),
                **git_server_keys.worker_env(),
                "KOYRA_KEEP_RELEASES": str(E2E_KEEP_RELEASES),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    if os.environ.get("KOYRA_TEST_SHOW_WORKER_LOG"):
        print(logfile.read_text())


@pytest.fixture(autouse=True)
def _redis_channel_layer(settings):
    """The product's own channel layer (tests/conftest.py puts an in-memory one in its place
    for unit tests)."""
    from koyra import settings as product

    settings.CHANNEL_LAYERS = copy.deepcopy(product.CHANNEL_LAYERS)


def wait_deploy(deploy, timeout: float = 240):
    """Until the deploy is finished; returns it fresh. A row that is gone fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        deploy.refresh_from_db()  # DoesNotExist propagates: a lost row is a failure
        if deploy.is_finished:
            return deploy
        if time.monotonic() > deadline:
            raise AssertionError(f"deploy #{deploy.pk} still {deploy.status} after {timeout}s")
        time.sleep(1)
