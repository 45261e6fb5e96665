"""Waiting for the registry to answer, against real sockets on the loopback: a closed port,
then a real HTTP listener that starts after a delay (how a registry task comes back after an
engine restart or a fresh bootstrap_cluster)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest.mock import patch

import pytest

from deployments import cluster, logstream, pipeline
from deployments.boundaries import registry
from deployments.models import Deploy
from tests.factories import DeployFactory


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Registry:
    """`GET /v2/` answers `status` once `start()` has run (optionally after a delay)."""

    def __init__(self, port: int, status: int = 200) -> None:
        self.port, self.status = port, status
        self.server: ThreadingHTTPServer | None = None
        self.started_at = 0.0

    def start(self, after: float = 0.0) -> None:
        def serve() -> None:
            time.sleep(after)
            status = self.status

            class Handler(BaseHTTPRequestHandler):
                def do_GET(self) -> None:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")

                def log_message(self, *args: object) -> None:
                    pass

            self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
            self.started_at = time.monotonic()
            self.server.serve_forever(poll_interval=0.05)

        threading.Thread(target=serve, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def port(settings) -> int:
    port = _closed_port()
    settings.KOYRA_REGISTRY = f"127.0.0.1:{port}"
    return port


@pytest.fixture
def later(port) -> Iterator[_Registry]:
    reg = _Registry(port)
    yield reg
    reg.stop()


def test_it_returns_at_once_and_says_nothing_when_the_registry_answers(later):
    later.start()
    time.sleep(0.3)
    said: list[str] = []
    started = time.monotonic()
    registry.wait_ready(5, on_wait=said.append)
    assert time.monotonic() - started < 0.5
    assert said == []


def test_it_waits_for_a_registry_that_starts_listening_later(port, later):
    said: list[str] = []
    later.start(after=1.5)
    started = time.monotonic()
    registry.wait_ready(15, on_wait=said.append)
    done = time.monotonic()
    assert later.started_at and done >= later.started_at
    assert 1.4 < done - started < 3.5
    assert said == [
        f"waiting for the registry at 127.0.0.1:{port} to answer (up to 15 s): "
        "[Errno 111] Connection refused"
    ]


def test_a_closed_port_fails_after_the_timeout_naming_address_and_reason(port):
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(registry.RegistryError) as err:
        registry.wait_ready(1.5, on_wait=said.append)
    assert 1.4 < time.monotonic() - started < 3
    assert str(err.value) == (
        f"the registry at 127.0.0.1:{port} did not answer within 1.5 s "
        "([Errno 111] Connection refused)"
    )
    assert len(said) == 1


@pytest.mark.parametrize(("status", "answers"), [(200, True), (401, True), (503, False)])
def test_any_answer_below_500_counts_a_server_error_does_not(
    port, status, answers, settings, tmp_path
):
    # No login made yet (a registry before bootstrap_cluster): any answer means it is up. With
    # a login, a 401 means the registry refuses it (tests/deployments/test_registry_auth.py).
    settings.KOYRA_DATA_DIR = tmp_path
    reg = _Registry(port, status)
    reg.start()
    time.sleep(0.3)
    try:
        if answers:
            registry.wait_ready(2)
        else:
            with pytest.raises(registry.RegistryError, match=r"within 1 s \(HTTP 503\)"):
                registry.wait_ready(1)
    finally:
        reg.stop()


# --- the push stage -------------------------------------------------------------------------


@pytest.fixture
def run(transactional_db, monkeypatch):
    # Committed rows: the stage's stop check closes a connection left in a transaction.
    monkeypatch.setattr(logstream, "_send", lambda deploy_id, message: None)
    return pipeline._Pipeline(DeployFactory(status=Deploy.Status.BUILDING, commit="c" * 40))


@patch("deployments.boundaries.engine.image_inspect", autospec=True, return_value={"Size": 1})
@patch("deployments.boundaries.engine.push", autospec=True, return_value="sha256:" + "d" * 64)
def test_the_push_waits_for_the_registry_and_says_so_in_the_deploy_log(
    push, inspect, run, port, later
):
    later.start(after=1.0)
    image = run._push(f"127.0.0.1:{port}/app:{'c' * 40}")
    assert image.digest == "sha256:" + "d" * 64
    assert push.call_count == 1
    log = run.deploy.log_text.splitlines()
    waiting = [line for line in log if "waiting for the registry" in line]
    assert waiting == [
        f"waiting for the registry at 127.0.0.1:{port} to answer (up to 60 s): "
        "[Errno 111] Connection refused"
    ]


@patch("deployments.boundaries.engine.push", autospec=True)
def test_a_registry_that_never_answers_fails_the_push_before_pushing(push, run, port, settings):
    settings.KOYRA_REGISTRY_WAIT_SECONDS = 1
    # The deploy fails (its message says the push did) with the registry's own reason.
    with pytest.raises(pipeline.DeployFailed, match=f"127.0.0.1:{port} did not answer within 1 s"):
        run._push(f"127.0.0.1:{port}/app:{'c' * 40}")
    assert push.call_count == 0


# --- bootstrap_cluster ----------------------------------------------------------------------


@pytest.fixture
def engine_ok(settings, tmp_path):
    settings.KOYRA_DATA_DIR = tmp_path
    with (
        patch("deployments.boundaries.engine.swarm_ensure", autospec=True, return_value="active"),
        patch("deployments.boundaries.engine.network_ensure", autospec=True, return_value=False),
        patch("deployments.boundaries.engine.image_ensure", autospec=True),
        patch("deployments.boundaries.engine.service_apply", autospec=True, return_value="created"),
        patch("deployments.boundaries.engine.secret_ensure", autospec=True, return_value="s1"),
        patch("deployments.boundaries.engine.secrets_list", autospec=True, return_value=[]),
    ):
        yield


def test_bootstrap_returns_once_its_registry_answers(engine_ok, later, port):
    said: list[str] = []
    later.start(after=1.0)
    assert cluster.cluster_bootstrap(ingress=False, say=said.append) is True
    assert time.monotonic() >= later.started_at
    assert f"waiting for the registry at 127.0.0.1:{port} to answer" in said[-2]
    assert said[-1] == f"registry: answers at 127.0.0.1:{port}"


def test_bootstrap_says_so_when_its_registry_never_answers(engine_ok, port, settings):
    settings.KOYRA_REGISTRY_WAIT_SECONDS = 1
    said: list[str] = []
    assert cluster.cluster_bootstrap(ingress=False, say=said.append) is False
    assert said[-1].startswith(
        f"registry: the registry at 127.0.0.1:{port} did not answer within 1 s"
    )
    assert "docker service ps koyra-registry" in said[-1]
