"""engine.service_wait's verdicts, against scripted Swarm states (the boundary's own calls
service_get/service_tasks are the fakes; everything else is the real code)."""

from __future__ import annotations

import pytest

from deployments.boundaries import engine


def _task(tid, marker, state, desired="running", err=""):
    return {
        "ID": tid,
        "DesiredState": desired,
        "Spec": {"ContainerSpec": {"Labels": {"koyra.deploy": marker}}},
        "Status": {"State": state, "Err": err},
    }


@pytest.fixture
def swarm(monkeypatch):
    frames: list[tuple[dict, list]] = []

    def next_frame():
        return frames[0] if len(frames) == 1 else frames.pop(0)

    monkeypatch.setattr(engine, "service_get", lambda name: next_frame()[0])
    monkeypatch.setattr(engine, "service_tasks", lambda name: frames[0][1])
    monkeypatch.setattr(engine.time, "sleep", lambda s: None)
    return frames


def _wait(**kw):
    kw.setdefault("timeout", 5)
    return engine.service_wait(
        "shop_web", marker_label="koyra.deploy", marker="2", replicas=2, **kw
    )


def test_it_is_live_only_when_every_running_task_is_the_new_one(swarm):
    lines = []
    swarm.append(
        (
            {"UpdateStatus": {"State": "updating"}},
            [_task("a", "1", "running"), _task("b", "2", "running")],
        )
    )
    swarm.append(
        (
            {"UpdateStatus": {"State": "completed"}},
            [
                _task("a", "1", "shutdown", "shutdown"),
                _task("b", "2", "running"),
                _task("c", "2", "running"),
            ],
        )
    )
    result = _wait(on_line=lines.append)
    assert result.ok
    assert "swarm: update updating" in lines and "swarm: update completed" in lines


def test_a_swarm_rollback_is_a_failure_even_though_the_update_call_succeeded(swarm):
    swarm.append(
        (
            {"UpdateStatus": {"State": "rollback_started", "Message": "update paused"}},
            [_task("b", "2", "failed", "shutdown", "unhealthy container")],
        )
    )
    swarm.append(
        (
            {"UpdateStatus": {"State": "rollback_completed", "Message": "rollback completed"}},
            [
                _task("a", "1", "running"),
                _task("b", "2", "failed", "shutdown", "unhealthy container"),
            ],
        )
    )
    result = _wait()
    assert not result.ok
    assert "rolled the update back" in result.message
    assert any("unhealthy container" in e for e in result.task_errors)


def test_a_new_service_whose_tasks_keep_failing_fails_with_their_errors(swarm):
    swarm.append(({}, [_task(f"t{i}", "2", "failed", "shutdown", f"exit {i}") for i in range(3)]))
    result = _wait()
    assert not result.ok
    assert "3 tasks of the new version failed" in result.message
    assert len(result.task_errors) == 3


def test_it_gives_up_at_the_timeout(swarm, monkeypatch):
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(engine.time, "monotonic", lambda: next(clock))
    swarm.append(({}, [_task("b", "2", "starting")]))
    result = _wait(timeout=30)
    assert not result.ok and "did not converge within 30s" in result.message


def test_a_cancel_stops_the_wait(swarm):
    swarm.append(({}, [_task("b", "2", "starting")]))
    with pytest.raises(engine.Aborted):
        _wait(should_stop=lambda: True)


def test_line_buffer_joins_chunks_into_whole_lines():
    lines = []
    buf = engine._LineBuffer(lines.append)
    for chunk in ["Step 1/2 : RUN echo sec", "ret-val", "ue\nnext li", "ne\n", "tail"]:
        buf.feed(chunk)
    buf.flush()
    assert lines == ["Step 1/2 : RUN echo secret-value", "next line", "tail"]


NO_NODE = "no suitable node (scheduling constraints not satisfied on 2 nodes)"


@pytest.fixture
def clock(monkeypatch):
    """Swarm's polls 1 s apart: sleep moves the clock the wait reads."""
    now = [1000.0]
    monkeypatch.setattr(engine.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(engine.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    return now


def test_a_task_no_node_can_take_fails_the_wait_in_swarms_words_after_the_grace(swarm, clock):
    lines: list[str] = []
    swarm.append(
        (
            {"UpdateStatus": {"State": "updating"}},
            [_task("a", "1", "running"), _task("b", "2", "pending", err=NO_NODE)],
        )
    )
    started = clock[0]
    result = _wait(on_line=lines.append, timeout=300, unplaceable_after=20)
    assert not result.ok
    assert result.message == f"Swarm cannot place the new version: {NO_NODE}"
    assert 20 < clock[0] - started < 30  # not the whole rollout timeout
    assert lines.count(f"swarm: task b: pending {NO_NODE}") == 1  # said once, at once


def test_a_pending_task_that_gets_placed_within_the_grace_goes_live(swarm, clock):
    pending = ({"UpdateStatus": {"State": "updating"}}, [_task("b", "2", "pending", err=NO_NODE)])
    swarm.extend([pending] * 10)  # a node joins after 10 polls
    swarm.append(
        (
            {"UpdateStatus": {"State": "completed"}},
            [_task("b", "2", "running"), _task("c", "2", "running")],
        )
    )
    result = _wait(timeout=300, unplaceable_after=20)
    assert result.ok


def test_the_grace_restarts_when_the_task_was_placed_in_between(swarm, clock):
    """Placed, then pending again (its node went away): the 20 s count from the new wait."""
    pending = ({"UpdateStatus": {"State": "updating"}}, [_task("b", "2", "pending", err=NO_NODE)])
    placed = ({"UpdateStatus": {"State": "updating"}}, [_task("b", "2", "starting")])
    swarm.extend([pending] * 15 + [placed] + [pending] * 15)
    swarm.append(
        (
            {"UpdateStatus": {"State": "completed"}},
            [_task("b", "2", "running"), _task("c", "2", "running")],
        )
    )
    assert _wait(timeout=300, unplaceable_after=20).ok


def test_a_pending_task_without_an_error_is_just_waited_for(swarm, clock):
    swarm.append(({"UpdateStatus": {"State": "updating"}}, [_task("b", "2", "pending")]))
    result = _wait(timeout=60, unplaceable_after=20)
    assert not result.ok and "did not converge within 60s" in result.message
