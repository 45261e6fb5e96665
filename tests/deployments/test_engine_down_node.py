"""engine.service_wait when a node goes down mid-update: Swarm's updater keeps waiting for the
new task it had placed there, so the wait starts Swarm's update again (a label change) once,
and only then. The boundary's own calls (service_get, service_tasks, nodes_list, client) are
the fakes; everything else is the real code."""

from __future__ import annotations

import docker
import pytest

from deployments.boundaries import engine

SERVICE = {
    "ID": "svc1",
    "Version": {"Index": 41},
    "Spec": {"Labels": {"koyra.app": "shop", "koyra.deploy": "2"}},
}


def _task(tid, marker, state, desired="running", node="mgr"):
    return {
        "ID": tid,
        "NodeID": node,
        "DesiredState": desired,
        "Spec": {"ContainerSpec": {"Labels": {"koyra.deploy": marker}}},
        "Status": {"State": state},
    }


def _node(nid, state):
    return {"id": nid, "hostname": f"host-{nid}", "state": state}


class FakeAPI:
    def __init__(self) -> None:
        self.updates: list[tuple[tuple, dict]] = []
        self.error: Exception | None = None

    def update_service(self, *args, **kwargs):
        self.updates.append((args, kwargs))
        if self.error:
            raise self.error


@pytest.fixture
def swarm(monkeypatch):
    """frames: (update state, tasks, nodes) per poll; the last one repeats."""
    frames: list[tuple[str | None, list, list]] = []
    api = FakeAPI()

    def next_frame():
        return frames[0] if len(frames) == 1 else frames.pop(0)

    def service_get(name):
        state = next_frame()[0]
        return {**SERVICE, "UpdateStatus": {"State": state} if state else {}}

    monkeypatch.setattr(engine, "service_get", service_get)
    monkeypatch.setattr(engine, "service_tasks", lambda name: frames[0][1])
    monkeypatch.setattr(engine, "nodes_list", lambda: frames[0][2])
    monkeypatch.setattr(engine, "client", lambda: type("C", (), {"api": api})())
    monkeypatch.setattr(engine.time, "sleep", lambda s: None)
    return frames, api


def _wait(lines, timeout=5):
    return engine.service_wait(
        "shop_web",
        marker_label="koyra.deploy",
        marker="2",
        replicas=2,
        timeout=timeout,
        on_line=lines.append,
    )


UP = [_node("mgr", "ready"), _node("n2", "ready")]
N2_DOWN = [_node("mgr", "ready"), _node("n2", "down")]
# The update had placed task b on n2; n2 went down before b ran; Swarm gave b up and started
# its slot again on the manager (c); the manager's old task a was not reached yet.
STALLED = [
    _task("a", "1", "running"),
    _task("b", "2", "assigned", desired="shutdown", node="n2"),
    _task("c", "2", "running"),
]
DONE = [
    _task("a", "1", "shutdown", desired="shutdown"),
    _task("b", "2", "assigned", desired="shutdown", node="n2"),
    _task("c", "2", "running"),
    _task("d", "2", "running"),
]


def test_an_update_stalled_on_a_down_node_is_started_again_once_and_goes_live(swarm):
    frames, api = swarm
    frames.extend([("updating", STALLED, N2_DOWN)] * 3 + [("completed", DONE, N2_DOWN)])
    lines: list[str] = []
    result = _wait(lines)
    assert result.ok, result.message
    assert len(api.updates) == 1
    args, kwargs = api.updates[0]
    assert args == ("svc1", 41)  # this version of the service: a concurrent change wins
    assert kwargs == {
        "labels": {"koyra.app": "shop", "koyra.deploy": "2", engine.UPDATE_RESTART_LABEL: "b"},
        "fetch_current_spec": True,
    }
    said = [line for line in lines if "is down" in line]
    assert said == [
        "swarm: node host-n2 is down; task b of the new version will not run there: "
        "the update starts again on the nodes that are up"
    ]


@pytest.mark.parametrize(
    "state, task, nodes",
    [
        # The node is up: a given-up task there is Swarm's own business (drain, a rollback).
        ("updating", _task("b", "2", "assigned", desired="shutdown", node="n2"), UP),
        # Not given up yet: Swarm has not marked the node down.
        ("updating", _task("b", "2", "assigned", node="n2"), N2_DOWN),
        # It ran (or ended): the updater saw it, nothing waits for it.
        ("updating", _task("b", "2", "running", desired="shutdown", node="n2"), N2_DOWN),
        ("updating", _task("b", "2", "shutdown", desired="shutdown", node="n2"), N2_DOWN),
        # Never placed: no node to be down.
        ("updating", _task("b", "2", "pending", desired="shutdown", node=""), N2_DOWN),
        # An old version's task: not what this update waits for.
        ("updating", _task("b", "1", "assigned", desired="shutdown", node="n2"), N2_DOWN),
        # No update running (a new service), or Swarm rolling back: no updater to restart.
        (None, _task("b", "2", "assigned", desired="shutdown", node="n2"), N2_DOWN),
        ("rollback_started", _task("b", "2", "assigned", desired="shutdown", node="n2"), N2_DOWN),
    ],
)
def test_nothing_is_restarted_otherwise(swarm, state, task, nodes):
    frames, api = swarm
    frames.append((state, [_task("a", "1", "running"), task], nodes))
    _wait([], timeout=0)
    assert api.updates == []


def test_it_is_restarted_once_per_given_up_task_and_the_timeout_still_rules(swarm, monkeypatch):
    frames, api = swarm
    clock = iter(range(0, 10_000))
    monkeypatch.setattr(engine.time, "monotonic", lambda: next(clock))
    frames.append(("updating", STALLED, N2_DOWN))
    result = _wait([], timeout=50)
    assert not result.ok and "did not converge within 50s" in result.message
    assert len(api.updates) == 1


def test_a_refused_restart_is_said_and_the_wait_goes_on(swarm):
    frames, api = swarm
    api.error = docker.errors.APIError("update out of sequence")
    frames.extend([("updating", STALLED, N2_DOWN)] * 2 + [("completed", DONE, N2_DOWN)])
    lines: list[str] = []
    assert _wait(lines).ok
    assert len(api.updates) == 1
    assert any(
        line.startswith("swarm: cannot restart the update stalled on node host-n2:")
        and "update out of sequence" in line
        for line in lines
    )
