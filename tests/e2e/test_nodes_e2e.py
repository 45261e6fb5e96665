"""Koyra on a real two-node swarm: a second engine joined as a worker (tests/e2e/second_node.py)
pulls the app's image from Koyra's registry with Swarm's registry auth, replicas spread over
both nodes, list_nodes shows them, and draining the worker moves its tasks to the manager."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from apps import services as app_services
from deployments import services
from deployments.boundaries import engine
from deployments.models import Deploy
from tests.e2e.conftest import httpd_app, wait_deploy, wait_for
from tests.e2e.second_node import HOSTNAME, SecondNode

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MANIFEST = """\
version: 1
run:
  port: 8000
  replicas: 3
  healthcheck: {path: /index.html, interval: 1, timeout: 2, retries: 3, start_period: 0}
"""


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
    repo = make_repo()
    repo.commit(httpd_app(cluster_ready["base"], "v1", manifest=MANIFEST), "v1")
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

    # Drain the worker: Swarm moves its tasks to the manager; activate it again.
    out = StringIO()
    call_command("drain_node", HOSTNAME, stdout=out)
    assert f"{HOSTNAME} ({second_node.node_id}): drain" in out.getvalue()
    wait_for(lambda: _all_running(app.service_name, on={manager_id}), 90, "tasks to move")
    assert _nodes_by_id()[second_node.node_id]["tasks"] == {}
    out = StringIO()
    call_command("activate_node", second_node.node_id, stdout=out)
    assert f"{HOSTNAME} ({second_node.node_id}): active" in out.getvalue()
    assert _nodes_by_id()[second_node.node_id]["availability"] == "active"


def _nodes_by_id() -> dict[str, dict]:
    return {r["id"]: r for r in _nodes()}
