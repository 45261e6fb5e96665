"""Koyra on a real two-node swarm: a second engine joined as a worker (tests/e2e/second_node.py)
pulls the app's image from Koyra's registry with Swarm's registry auth, replicas spread over
both nodes and serve through Traefik from both, list_nodes shows them, draining the worker
moves its tasks to the manager with no request failing, and the worker's engine stopping
mid-deploy ends the deploy truly."""

from __future__ import annotations

import json
import threading
from io import StringIO

import pytest
from django.core.management import call_command

from apps import services as app_services
from deployments import services
from deployments.boundaries import engine
from deployments.models import Deploy
from tests.e2e.conftest import httpd_app, via_traefik, wait_deploy, wait_for
from tests.e2e.second_node import HOSTNAME, SecondNode

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MANIFEST = """\
version: 1
run:
  port: 8000
  replicas: 3
  healthcheck: {path: /index.html, interval: 1, timeout: 2, retries: 3, start_period: 0}
"""

# Each task answers /cgi-bin/node with its container's hostname (its container id's start):
# which node answered a request through Traefik.
NODE_CGI = "#!/bin/sh\necho Content-Type: text/plain\necho\nhostname\n"


def node_app(base: str, text: str, host: str) -> dict[str, str]:
    files = httpd_app(
        base,
        text,
        manifest=MANIFEST + f"  domains: [{host}]\n",
        extra_run="COPY node.cgi /www/cgi-bin/node\nRUN chmod 0755 /www/cgi-bin/node\n",
    )
    return {**files, "node.cgi": NODE_CGI}


@pytest.fixture(scope="module")
def second_node(cluster_ready, docker_client):
    """Joined for this module only: no other test's service lands on it."""
    node = SecondNode(docker_client)
    try:
        node.start()
        node.join()
        yield node
    finally:
        node.stop()


def _nodes() -> list[dict]:
    out = StringIO()
    call_command("list_nodes", "--json", stdout=out)
    return json.loads(out.getvalue())


def _placement(service: str) -> dict[str, list[dict]]:
    """The tasks Swarm wants running, by node id."""
    by_node: dict[str, list[dict]] = {}
    for t in engine.service_tasks(service):
        if t["DesiredState"] == "running":
            by_node.setdefault(t.get("NodeID", ""), []).append(t)
    return by_node


def _all_running(service: str, on: set[str] | None = None) -> bool:
    tasks = [t for ts in _placement(service).values() for t in ts]
    return (
        len(tasks) == 3
        and all(t["Status"]["State"] == "running" for t in tasks)
        and (on is None or {t["NodeID"] for t in tasks} <= on)
    )


def test_list_nodes_shows_the_worker(second_node):
    rows = {r["id"]: r for r in _nodes()}
    worker = rows[second_node.node_id]
    assert worker["hostname"] == HOSTNAME
    assert (worker["role"], worker["state"], worker["availability"]) == (
        "worker",
        "ready",
        "active",
    )
    assert worker["engine"] and worker["tasks"] == {}
    managers = [r for r in rows.values() if r["role"] == "manager"]
    assert managers and any(m["leader"] for m in managers)


def test_bootstrap_prints_what_a_new_node_runs(second_node, docker_client):
    out = StringIO()
    call_command("bootstrap_cluster", stdout=out)
    token = docker_client.swarm.attrs["JoinTokens"]["Worker"]
    assert f"run on it: docker swarm join --token {token} " in out.getvalue()
    assert "KOYRA_REGISTRY=127.0.0.1:5000 is this node's loopback" in out.getvalue()


def test_replicas_spread_over_both_nodes_run_the_new_digest_and_drain_moves_them(
    second_node, worker, cluster_ready, unique_name, make_repo
):
    name = unique_name("nodes")
    host = f"{name}.koyra.test"
    repo = make_repo()
    repo.commit(node_app(cluster_ready["base"], "v1", host), "v1")
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    d = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d.status == Deploy.Status.LIVE, d.log_text

    # Spread: both nodes run the app, and every task runs the deploy's own digest, which the
    # worker pulled from Koyra's registry with the login Swarm passed on.
    placement = _placement(app.service_name)
    manager_id = next(r["id"] for r in _nodes() if r["role"] == "manager" and r["leader"])
    assert set(placement) == {manager_id, second_node.node_id}, placement.keys()
    for tasks in placement.values():
        for t in tasks:
            assert t["Spec"]["ContainerSpec"]["Image"] == d.image.pinned
            assert t["Status"]["State"] == "running"
    pulled = [
        digest
        for image in second_node.client.images.list()
        for digest in image.attrs.get("RepoDigests") or []
    ]
    assert d.image.pinned in pulled
    rows = {r["id"]: r for r in _nodes()}
    assert rows[second_node.node_id]["tasks"] == {name: len(placement[second_node.node_id])}
    assert sum(r["tasks"].get(name, 0) for r in rows.values()) == 3

    # Through Traefik (on the manager), requests are answered by tasks on both nodes: the
    # worker's over the overlay network.
    _wait_every_node_answers(host, placement)

    # Drain the worker: Swarm moves its tasks to the manager, and no request through Traefik
    # fails meanwhile; activate it again.
    with _RequestsMeanwhile(host) as failures:
        out = StringIO()
        call_command("drain_node", HOSTNAME, stdout=out)
        assert f"{HOSTNAME} ({second_node.node_id}): drain" in out.getvalue()
        wait_for(lambda: _all_running(app.service_name, on={manager_id}), 90, "tasks to move")
    assert failures == [], failures
    assert _nodes_by_id()[second_node.node_id]["tasks"] == {}
    out = StringIO()
    call_command("activate_node", second_node.node_id, stdout=out)
    assert f"{HOSTNAME} ({second_node.node_id}): active" in out.getvalue()
    assert _nodes_by_id()[second_node.node_id]["availability"] == "active"


def _wait_every_node_answers(host: str, placement: dict[str, list[dict]]) -> None:
    """Requests through Traefik until tasks on every node of `placement` answered, each
    request answered 200 (a task says its container's hostname: which node it runs on)."""
    node_of = {
        t["Status"]["ContainerStatus"]["ContainerID"][:12]: node
        for node, tasks in placement.items()
        for t in tasks
    }
    answers: list[tuple[int, str]] = []

    def every_node_answered() -> bool:
        try:
            answers.append(via_traefik(host, "/cgi-bin/node"))
        except OSError as exc:  # no answer in time: a failure too
            answers.append((0, repr(exc)))
        return {node_of.get(body.strip()) for _, body in answers} >= set(placement)

    wait_for(every_node_answered, 30, "tasks on every node to answer", interval=0.1)
    assert all(status == 200 for status, _ in answers), answers


class _RequestsMeanwhile:
    """Requests through Traefik, one after the other, for as long as the block runs; the
    failures (not 200 v1, or no answer) are in the list it gives."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.failures: list[object] = []
        self.count = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                answer: object = via_traefik(self.host)
            except OSError as exc:
                answer = exc
            self.count += 1
            if answer != (200, "v1\n"):
                self.failures.append(answer)
            self.done.wait(0.05)

    def __enter__(self) -> list[object]:
        self.thread.start()
        return self.failures

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.done.set()
        self.thread.join(timeout=30)
        if exc_type is None:
            assert self.count > 10, f"only {self.count} requests were made"


def _nodes_by_id() -> dict[str, dict]:
    return {r["id"]: r for r in _nodes()}


def _not_running_yet_on(service: str, node_id: str, deploy: Deploy) -> bool:
    """A task of this deploy that Swarm wants running on the node, not running yet."""
    return any(
        t.get("NodeID") == node_id
        and t["Spec"]["ContainerSpec"].get("Labels", {}).get("koyra.deploy") == str(deploy.pk)
        and t["Status"]["State"] in ("assigned", "accepted", "preparing", "ready", "starting")
        for t in _placement(service).get(node_id, [])
    )


def test_the_workers_engine_stopping_mid_deploy_ends_it_truly_and_the_next_deploy_uses_it(
    second_node, worker, cluster_ready, unique_name, make_repo
):
    """The worker's dockerd stops while a task of the new version is starting on it. Swarm
    marks the node down, gives its tasks up and starts them again on the manager, but its
    updater would wait forever for the given-up task: the rollout starts the update again
    (engine.service_wait), so the deploy ends: live if every task Swarm wants runs the new
    digest healthy on the manager, else failed in Swarm's words. The app serves from the
    manager meanwhile; once the worker is back, the next deploy places tasks on it again."""
    name = unique_name("nodedown")
    host = f"{name}.koyra.test"
    repo = make_repo()
    repo.commit(node_app(cluster_ready["base"], "v1", host), "v1")
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    d1 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d1.status == Deploy.Status.LIVE, d1.log_text
    assert second_node.node_id in _placement(app.service_name)

    repo.commit(node_app(cluster_ready["base"], "v2", host), "v2")
    d2 = services.deploy_create(app=app, trigger="manual")
    wait_for(
        lambda: _not_running_yet_on(app.service_name, second_node.node_id, d2),
        180,
        "a task of the new version starting on the worker",
        interval=0.1,
    )
    try:
        second_node.stop_engine()
        second_node.wait_state("down", 60)
        d2 = wait_deploy(d2, timeout=120)
        if d2.status == Deploy.Status.LIVE:
            # Every task Swarm wants runs the new digest, healthy, on the node that is up (if
            # the deploy went live before Swarm saw the node down, what ran there starts again
            # on the manager).
            on = {_manager_id()}
            wait_for(lambda: _all_running(app.service_name, on=on), 60, "3 tasks on the manager")
            for tasks in _placement(app.service_name).values():
                for t in tasks:
                    assert t["Spec"]["ContainerSpec"]["Image"] == d2.image.pinned
            serving = "v2"
        else:
            assert d2.status == Deploy.Status.FAILED, d2.log_text
            assert "rollout failed: " in d2.error, d2.log_text
            assert "Swarm" in d2.error or "task " in d2.error, d2.error  # Swarm's words
            serving = "v1"
        # The app serves from the manager while the worker is down.
        wait_for(lambda: via_traefik(host) == (200, f"{serving}\n"), 30, f"{serving} served")
        for _ in range(10):
            assert via_traefik(host) == (200, f"{serving}\n")
        assert _nodes_by_id()[second_node.node_id]["state"] == "down"
    finally:
        second_node.start_engine()  # whatever failed: the module's other tests need it
    second_node.wait_state("ready", 60)

    # Back: the next deploy runs the new digest on the worker again.
    repo.commit(node_app(cluster_ready["base"], "v3", host), "v3")
    d3 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d3.status == Deploy.Status.LIVE, d3.log_text
    placement = _placement(app.service_name)
    assert set(placement) == {_manager_id(), second_node.node_id}, placement.keys()
    for t in placement[second_node.node_id]:
        assert t["Spec"]["ContainerSpec"]["Image"] == d3.image.pinned
        assert t["Status"]["State"] == "running"
    _wait_every_node_answers(host, placement)


def _manager_id() -> str:
    return next(r["id"] for r in _nodes() if r["role"] == "manager" and r["leader"])
