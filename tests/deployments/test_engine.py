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
