"""The swarm's nodes as Koyra shows them (list_nodes, the /nodes/ page) and an operator's drain
and activate (SPEC §6). A node's Koyra tasks are the tasks Swarm wants running there whose
container carries the `koyra.app` label, counted per app."""

from __future__ import annotations

from typing import Any, Literal

from apps.validators import validate_node_ref
from deployments.boundaries import engine

FIELDS = ("id", "hostname", "role", "state", "availability", "engine", "addr", "leader")
APP_LABEL = "koyra.app"


class NodeError(Exception):
    """A node that cannot be found or changed; the message names it and what to do."""


def rows() -> list[dict[str, Any]]:
    """Every node, managers first: FIELDS and `tasks`, {app name: tasks Swarm wants running
    there}."""
    per_node: dict[str, dict[str, int]] = {}
    for t in engine.running_tasks(APP_LABEL):
        if t["node"]:  # not scheduled yet: on no node
            apps = per_node.setdefault(t["node"], {})
            apps[t["value"]] = apps.get(t["value"], 0) + 1
    return [
        {**{k: n[k] for k in FIELDS}, "tasks": dict(sorted(per_node.get(n["id"], {}).items()))}
        for n in engine.nodes_list()
    ]


def find(ref: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The node `ref` names: its id, a hostname, or the start of one id only."""
    validate_node_ref(ref)
    for match in (
        lambda n: n["id"] == ref,
        lambda n: n["hostname"] == ref,
        lambda n: n["id"].startswith(ref),
    ):
        found = [n for n in nodes if match(n)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            ids = ", ".join(n["id"] for n in found)
            raise NodeError(f"{ref!r} names several nodes ({ids}): give the node's id")
    raise NodeError(f"No node {ref!r} in the swarm: `manage.py list_nodes` shows them")


def set_availability(
    ref: str, availability: Literal["active", "drain"]
) -> tuple[dict[str, Any], bool]:
    """Drain (Swarm moves the node's tasks to the other nodes) or activate a node. Returns
    the node and whether it changed. The last active manager is never drained: the registry
    and Traefik run on managers only, and every app would stop with them."""
    nodes = rows()
    node = find(ref, nodes)
    if availability == "drain" and node["role"] == "manager":
        others = [
            n
            for n in nodes
            if n["role"] == "manager" and n["id"] != node["id"] and n["availability"] == "active"
        ]
        if not others:
            raise NodeError(
                f"{node['hostname']} ({node['id']}) is the only active manager: the registry "
                "and Traefik run there. Add or activate another manager first."
            )
    return node, engine.node_availability(node["id"], availability)
