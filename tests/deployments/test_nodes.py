"""The swarm's nodes (SPEC §6): list_nodes, drain_node/activate_node, the /nodes/ page and the
join instructions of bootstrap_cluster. The engine boundary is patched; the rest is real."""

from __future__ import annotations

import html
import json
from io import StringIO
from typing import Any
from unittest.mock import patch

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from apps.validators import validate_node_ref
from deployments import cluster, nodes
from deployments.boundaries import engine
from tests import base

cast = base.cast

MANAGER: dict[str, Any] = {
    "id": "m" * 25,
    "hostname": "alpha",
    "role": "manager",
    "state": "ready",
    "availability": "active",
    "engine": "28.2.2",
    "addr": "10.0.0.1",
    "leader": True,
    "labels": {},
}
WORKER = {**MANAGER, "id": "w" * 24 + "1", "hostname": "beta", "role": "worker", "leader": False}
WORKER2 = {**WORKER, "id": "w" * 24 + "2", "addr": "10.0.0.3"}
TASKS = [
    {"node": MANAGER["id"], "value": "shop", "state": "running", "service": "s1"},
    {"node": WORKER["id"], "value": "shop", "state": "running", "service": "s1"},
    {"node": WORKER["id"], "value": "shop", "state": "starting", "service": "s1"},
    {"node": WORKER["id"], "value": "blog", "state": "running", "service": "s2"},
    {"node": "", "value": "blog", "state": "pending", "service": "s2"},  # on no node yet
]


@pytest.fixture
def swarm():
    with (
        patch.object(engine, "nodes_list", autospec=True) as nodes_list,
        patch.object(engine, "running_tasks", autospec=True) as running_tasks,
        patch.object(engine, "node_availability", autospec=True) as availability,
    ):
        nodes_list.return_value = [dict(MANAGER), dict(WORKER)]
        running_tasks.return_value = TASKS
        availability.return_value = True
        yield {"nodes": nodes_list, "tasks": running_tasks, "availability": availability}


def test_rows_count_each_app_s_tasks_per_node(swarm):
    rows = nodes.rows()
    assert [r["hostname"] for r in rows] == ["alpha", "beta"]
    assert rows[0]["tasks"] == {"shop": 1}
    assert rows[1]["tasks"] == {"blog": 1, "shop": 2}
    assert set(rows[0]) == {*nodes.FIELDS, "tasks"}  # no labels or other engine detail
    swarm["tasks"].assert_called_once_with("koyra.app")


def test_list_nodes_json_and_text(swarm):
    out = StringIO()
    call_command("list_nodes", "--json", stdout=out)
    rows = json.loads(out.getvalue())
    assert rows[1]["hostname"] == "beta" and rows[1]["tasks"] == {"blog": 1, "shop": 2}
    out = StringIO()
    call_command("list_nodes", stdout=out)
    lines = out.getvalue().splitlines()
    assert "manager (leader)" in lines[0] and "shop:1" in lines[0]
    assert "worker" in lines[1] and "blog:1, shop:2" in lines[1] and "28.2.2" in lines[1]


def test_list_nodes_says_why_when_the_engine_does_not_answer(swarm):
    swarm["nodes"].side_effect = engine.EngineError("Cannot list the swarm's nodes: no swarm")
    with pytest.raises(CommandError, match="no swarm"):
        call_command("list_nodes")


@pytest.mark.parametrize("ref", ["beta", WORKER["id"], WORKER["id"][:6]])
def test_drain_and_activate_by_hostname_id_or_id_prefix(swarm, ref):
    out = StringIO()
    call_command("drain_node", ref, stdout=out)
    swarm["availability"].assert_called_once_with(WORKER["id"], "drain")
    assert out.getvalue().strip() == f"beta ({WORKER['id']}): drain"
    swarm["availability"].return_value = False
    out = StringIO()
    call_command("activate_node", ref, stdout=out)
    assert out.getvalue().strip() == f"beta ({WORKER['id']}): already active"


def test_an_ambiguous_or_unknown_node_is_refused_naming_it(swarm):
    swarm["nodes"].return_value = [dict(MANAGER), dict(WORKER), dict(WORKER2)]
    with pytest.raises(CommandError, match=r"names several nodes .*give the node.s id"):
        call_command("drain_node", "beta")
    with pytest.raises(CommandError, match="No node 'gamma' in the swarm"):
        call_command("drain_node", "gamma")
    call_command("drain_node", WORKER2["id"], stdout=StringIO())  # the id is never ambiguous
    swarm["availability"].assert_called_once_with(WORKER2["id"], "drain")


@pytest.mark.parametrize(
    "ref", ["", "a b", "beta\n", "x" * 254, "../beta", "beta;ls", "béta", "$(id)"]
)
def test_a_malformed_node_name_is_refused_before_the_engine_is_asked(swarm, ref):
    with pytest.raises(CommandError, match="Invalid node"):
        call_command("drain_node", ref)
    swarm["availability"].assert_not_called()


@pytest.mark.parametrize("ref", ["a", "koyra-node2", "node_1.example.com", "x" * 253, "A1"])
def test_node_names_that_are_taken(ref):
    validate_node_ref(ref)


@pytest.mark.parametrize("ref", [None, 3, ["beta"], "beta\n", "\nbeta", " beta", "-rf", ".."])
def test_node_names_that_are_not(ref):
    with pytest.raises(ValidationError):
        validate_node_ref(ref)


def test_the_only_active_manager_is_never_drained(swarm):
    with pytest.raises(CommandError, match="only active manager: the registry and Traefik"):
        call_command("drain_node", "alpha")
    second = {**MANAGER, "id": "n" * 25, "hostname": "gamma", "leader": False}
    swarm["nodes"].return_value = [dict(MANAGER), {**second, "availability": "drain"}]
    with pytest.raises(CommandError, match="only active manager"):
        call_command("drain_node", "alpha")
    swarm["availability"].assert_not_called()
    swarm["nodes"].return_value = [dict(MANAGER), second]
    call_command("drain_node", "alpha", stdout=StringIO())
    swarm["availability"].assert_called_once_with(MANAGER["id"], "drain")


# --- the page ---------------------------------------------------------------------------------


def test_the_page_shows_nodes_and_tasks_to_operators(swarm, client, cast):
    client.force_login(cast.staff)
    resp = client.get("/nodes/")
    text = resp.content.decode()
    assert resp.status_code == 200
    assert "alpha" in text and "beta" in text and "28.2.2" in text
    assert "<code>blog</code>: 1, <code>shop</code>: 2" in text
    assert f'action="/nodes/{WORKER["id"]}/availability"' in text


@pytest.mark.parametrize("who", ["owner", "admin", "member", "viewer", "outsider"])
def test_tenants_do_not_see_the_machines(swarm, client, cast, who):
    client.force_login(getattr(cast, who))
    assert client.get("/nodes/").status_code == 403
    resp = client.post(f"/nodes/{WORKER['id']}/availability", {"availability": "drain"})
    assert resp.status_code == 403
    swarm["nodes"].assert_not_called()
    swarm["availability"].assert_not_called()
    assert 'href="/nodes/"' not in client.get("/apps/").content.decode()


def test_it_needs_a_login(client, db):
    resp = client.get("/nodes/")
    assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]


def test_an_engine_that_does_not_answer_is_said_not_a_500(swarm, client, cast):
    swarm["nodes"].side_effect = engine.EngineError("Cannot reach the Docker engine")
    client.force_login(cast.superuser)
    resp = client.get("/nodes/")
    assert resp.status_code == 200
    assert "Cannot read the swarm: Cannot reach the Docker engine" in resp.content.decode()


def test_drain_from_the_page(swarm, client, cast):
    client.force_login(cast.superuser)
    resp = client.post(f"/nodes/{WORKER['id']}/availability", {"availability": "drain"})
    assert resp.status_code == 302 and resp["Location"] == "/nodes/"
    swarm["availability"].assert_called_once_with(WORKER["id"], "drain")
    text = client.get("/nodes/").content.decode()
    assert f"beta ({WORKER['id'][:12]}): drain." in text


@pytest.mark.parametrize(
    ("node", "form", "said"),
    [
        ("beta", {"availability": "pause"}, "must be 'active' or 'drain'"),
        ("beta", {}, "must be 'active' or 'drain'"),
        ("gamma", {"availability": "drain"}, "No node 'gamma'"),
        ("alpha", {"availability": "drain"}, "only active manager"),
        ("be%20ta", {"availability": "drain"}, "Invalid node"),
    ],
)
def test_bad_page_input_is_said_and_changes_nothing(swarm, client, cast, node, form, said):
    client.force_login(cast.staff)
    resp = client.post(f"/nodes/{node}/availability", form, follow=True)
    assert resp.status_code == 200
    assert said in html.unescape(resp.content.decode())
    swarm["availability"].assert_not_called()


def test_the_page_only_takes_a_post_to_change(swarm, client, cast):
    client.force_login(cast.staff)
    assert client.get(f"/nodes/{WORKER['id']}/availability").status_code == 405


# --- placement and joining --------------------------------------------------------------------


@pytest.mark.django_db
def test_an_app_s_replicas_spread_over_the_nodes_and_the_registry_and_traefik_stay_on_managers():
    from tests.deployments.test_service_spec import _spec  # one release spec for both files

    _, s = _spec(replicas=3)
    assert s.spread == ["node.id"] and s.replicas == 3
    assert cluster.traefik_spec().constraints == ["node.role==manager"]
    htpasswd = {"id": "x", "name": "y", "file": "z"}
    assert cluster.registry_spec(htpasswd).constraints == ["node.role==manager"]


def test_an_empty_spread_keeps_the_fingerprint_of_services_made_before_it():
    a = engine.ServiceSpec(name="x", image="i")
    before = engine.ServiceSpec(name="x", image="i")
    del before.__dict__["spread"]  # a spec as it was before `spread` existed
    assert a.fingerprint() == engine.ServiceSpec.fingerprint(before)
    b = engine.ServiceSpec(name="x", image="i", spread=["node.id"])
    assert a.fingerprint() != b.fingerprint()
    kwargs = engine._service_kwargs(b)
    assert kwargs["preferences"] == [("spread", "node.id")]
    assert engine._service_kwargs(a)["preferences"] == []


@pytest.mark.parametrize(
    ("registry", "advertise", "expect", "refuse"),
    [
        ("10.0.0.1:5000", "10.0.0.1:2377", '"insecure-registries": ["10.0.0.1:5000"]', None),
        ("127.0.0.1:5000", "10.0.0.1:2377", "Set KOYRA_REGISTRY=10.0.0.1:5000", None),
        ("localhost:5000", "10.0.0.1:2377", "Set KOYRA_REGISTRY=10.0.0.1:5000", None),
        ("10.0.0.1:5000", "127.0.0.1:2377", "KOYRA_SWARM_ADVERTISE_ADDR", "insecure"),
    ],
)
def test_bootstrap_says_how_a_node_joins(settings, registry, advertise, expect, refuse):
    settings.KOYRA_REGISTRY = registry
    with patch.object(engine, "swarm_join", autospec=True) as join:
        join.return_value = {"token": "SWMTKN-1-abc", "addr": advertise}
        lines = cluster.join_instructions()
    text = "\n".join(lines)
    assert f"docker swarm join --token SWMTKN-1-abc {advertise}" in lines[0]
    assert expect in text
    assert "created" not in text and "updated" not in text  # bootstrap's idempotence words


def test_bootstrap_on_a_worker_says_so(settings):
    with patch.object(engine, "swarm_join", autospec=True) as join:
        join.side_effect = engine.EngineError("This engine is not a swarm manager")
        assert cluster.join_instructions() == ["nodes: This engine is not a swarm manager"]
