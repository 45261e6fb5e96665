"""The rollout wait's verdicts on top of the engine's (rollout.py): what turns live, what is put
back. The engine boundary is the fake; the Swarm's own behaviour is in tests/e2e/test_rollout."""

from __future__ import annotations

from unittest.mock import patch

import pytest

from deployments import rollout
from deployments.boundaries import engine
from deployments.models import Deploy
from deployments.release_spec import ReleaseSpec
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db

SPEC = {
    "image": "127.0.0.1:5000/shop@sha256:" + "a" * 64,
    "entrypoint": [],
    "cmd": ["httpd"],
    "env": {},
    "secrets": [],
    "predeploy": [],
    "port": 8000,
    "replicas": 2,
    "healthcheck": {},
    "domains": [],
    "shell": True,
}
CRASH = "task abc: failed task: non-zero exit (1)"


def _rollout(*, created=False, previous=True, log=None):
    app = AppFactory(name="shop")
    before = DeployFactory(app=app, spec=SPEC) if previous else None
    deploy = DeployFactory(app=app)
    return before, rollout.Rollout(
        app=app,
        deploy_id=deploy.pk,
        spec=ReleaseSpec.from_json(SPEC),
        previous=before,
        created=created,
        log=log.append if log is not None else (lambda s: None),
        should_stop=lambda: False,
        secret_refs=lambda keys: [],
    )


def _task(marker, state, desired="running"):
    return {
        "Spec": {"ContainerSpec": {"Labels": {"koyra.deploy": marker}}},
        "DesiredState": desired,
        "Status": {"State": state},
    }


def _previous_running(name):
    """Whatever the undo put back runs at once: two running tasks of every deploy but the one
    rolled out (the newest), of which nothing is left."""
    pks = list(Deploy.objects.order_by("pk").values_list("pk", flat=True))[:-1]
    return [_task(str(pk), "running") for pk in pks] * 2


@pytest.fixture
def swarm():
    with (
        patch.object(engine, "service_wait", autospec=True) as wait,
        patch.object(engine, "task_logs", autospec=True, return_value=["[task abc] crashing"]),
        patch.object(engine, "service_get", autospec=True) as get,
        patch.object(engine, "service_apply", autospec=True) as apply,
        patch.object(engine, "service_remove", autospec=True) as remove,
        patch.object(engine, "service_tasks", autospec=True, side_effect=_previous_running),
        patch.object(rollout.time, "sleep", autospec=True),
    ):
        get.return_value = {"UpdateStatus": {"State": "completed"}}
        yield wait, get, apply, remove


def test_it_returns_when_every_task_runs_the_release(swarm):
    wait, _, apply, remove = swarm
    wait.return_value = engine.Rollout(True, "all tasks run the new version")
    log: list[str] = []
    _, r = _rollout(log=log)
    r.wait()
    assert not apply.called and not remove.called
    assert log == ["[task abc] crashing"]  # the tasks' own output, always
    assert wait.call_args.kwargs["poll"] < 1  # live soon after the update completed


def test_a_task_that_failed_outside_swarms_window_still_fails_the_update(swarm):
    """Swarm completed (the crash fell outside its monitor window and it restarted the task):
    Koyra puts the live release back itself and says why."""
    wait, _, apply, _ = swarm
    wait.return_value = engine.Rollout(True, "all tasks run the new version", [CRASH])
    before, r = _rollout()
    with pytest.raises(rollout.RolloutFailed) as exc:
        r.wait()
    assert str(exc.value) == (
        "rollout failed: a task of the new version failed during the rollout "
        f"({CRASH}); the previous version keeps serving"
    )
    (svc,), kwargs = apply.call_args
    assert kwargs == {"force": True}
    assert (svc.image, svc.labels["koyra.deploy"]) == (SPEC["image"], str(before.pk))


def test_after_a_swarm_rollback_nothing_is_applied_again(swarm):
    wait, get, apply, _ = swarm
    get.return_value = {"UpdateStatus": {"State": "rollback_completed"}}
    wait.return_value = engine.Rollout(False, "Swarm rolled the update back: x", [CRASH])
    _, r = _rollout()
    with pytest.raises(rollout.RolloutFailed, match="Swarm rolled the update back: x"):
        r.wait()
    assert not apply.called


def test_a_first_deploy_whose_task_recovered_is_live_and_a_failed_one_is_removed(swarm):
    """No update, no Swarm rollback: a task restarted during a first deploy is Swarm's restart
    policy at work (max 3 failures, engine.service_wait); a failed first deploy leaves nothing."""
    wait, _, apply, remove = swarm
    wait.return_value = engine.Rollout(True, "all tasks run the new version", [CRASH])
    _, r = _rollout(created=True, previous=False)
    r.wait()
    wait.return_value = engine.Rollout(False, "3 tasks of the new version failed", [CRASH] * 3)
    with pytest.raises(rollout.RolloutFailed, match=r"; no version was live$"):
        r.wait()
    remove.assert_called_once_with("shop_web")
    assert not apply.called


def test_a_failed_rollout_ends_only_once_the_previous_release_runs_again(swarm):
    """Swarm says rollback_completed while the crashed task's slot still waits out its restart
    delay (a task of the previous release `ready`): the deploy is not called failed, "the
    previous version keeps serving", before that task runs."""
    wait, get, _, _ = swarm
    get.return_value = {"UpdateStatus": {"State": "rollback_completed"}}
    wait.return_value = engine.Rollout(False, "Swarm rolled the update back: x", [CRASH])
    before, r = _rollout()
    old = str(before.pk)
    frames = [
        [_task(old, "running", "shutdown"), _task(old, "ready", "ready")],
        [_task(old, "running", "shutdown"), _task(old, "starting")],
        [_task(old, "running"), _task(old, "running")],
    ]
    engine.service_tasks.side_effect = frames  # the fixture's fake
    with pytest.raises(rollout.RolloutFailed, match="the previous version keeps serving"):
        r.wait()
    assert engine.service_tasks.call_count == 3


def test_a_failed_rollout_ends_only_once_no_task_of_it_is_wanted_any_more(swarm):
    """A task Swarm could not place stays pending (desired running) for a while after the live
    release was put back: the deploy is failed once Swarm gave it up, not before."""
    wait, _, _, _ = swarm
    wait.return_value = engine.Rollout(False, "Swarm cannot place the new version: no node")
    before, r = _rollout()
    old, new = str(before.pk), str(r.deploy_id)
    frames = [
        [_task(old, "running"), _task(old, "running"), _task(new, "pending")],
        [_task(old, "running"), _task(old, "running"), _task(new, "pending")],
        [_task(old, "running"), _task(old, "running"), _task(new, "pending", "shutdown")],
    ]
    engine.service_tasks.side_effect = frames
    with pytest.raises(rollout.RolloutFailed, match="the previous version keeps serving"):
        r.wait()
    assert engine.service_tasks.call_count == 3


def test_a_cancel_mid_rollout_puts_the_live_release_back(swarm):
    wait, _, apply, _ = swarm
    wait.side_effect = engine.Aborted("stopped while waiting for the rollout")
    _, r = _rollout()
    with pytest.raises(engine.Aborted):
        r.wait()
    assert apply.called


# --- A failed healthcheck is named, with its last probe's output (issue 15) ------------------

UNHEALTHY = "task abc: failed task: non-zero exit (143): dockerexec: unhealthy container"


def _probe(exit_code, output, task="abc"):
    return {"task": task, "status": "unhealthy", "exit": exit_code, "output": output}


@pytest.mark.parametrize(
    "check,probes,named",
    [
        (
            {"path": "/healthz"},
            [_probe(1, "wget: server returned error: HTTP/1.0 503\n/bin/sh: curl: not found\n")],
            "the healthcheck (GET /healthz on port 8000) did not pass: its last probe said: "
            "wget: server returned error: HTTP/1.0 503",
        ),
        (
            {"cmd": "pg_isready -h db"},
            [_probe(0, "ok", "new"), _probe(2, "db:5432 - no response\n", "old")],
            "the healthcheck (command `pg_isready -h db`) did not pass: its last probe exited 2: "
            "db:5432 - no response",
        ),
        (
            {"cmd": "true"},
            [_probe(-1, "Health check exceeded timeout (3s)")],
            "its last probe exited -1: Health check exceeded timeout (3s)",
        ),
        ({"cmd": "false"}, [_probe(1, "")], "its last probe exited 1: no output"),
    ],
)
def test_a_release_that_never_became_healthy_names_the_check_and_its_last_probe(
    swarm, check, probes, named
):
    wait = swarm[0]
    wait.return_value = engine.Rollout(False, "Swarm rolled the update back: x", [UNHEALTHY])
    _, r = _rollout()
    r.spec = ReleaseSpec.from_json({**SPEC, "healthcheck": {**check, "interval": 1}})
    with (
        patch.object(engine, "task_probes", autospec=True, return_value=probes) as read,
        pytest.raises(rollout.RolloutFailed) as exc,
    ):
        r.wait()
    read.assert_called_once_with("shop_web", marker_label="koyra.deploy", marker=str(r.deploy_id))
    assert named in str(exc.value)
    assert "dockerexec" not in str(exc.value) and "rolled the update back" not in str(exc.value)
    assert str(exc.value).endswith("; the previous version keeps serving")


# A crash: the probe that ran while the app was going down failed, but the engine had not
# called the container unhealthy (it was healthy, or still starting).
CRASHED_MID_PROBE = [
    {"task": "abc", "status": status, "exit": 137, "output": ""}
    for status in ("healthy", "starting")
]


@pytest.mark.parametrize(
    "probes",
    [[], [_probe(0, "ok")], [_probe(None, "")], CRASHED_MID_PROBE[:1], CRASHED_MID_PROBE[1:]],
)
def test_a_failure_that_is_not_the_healthcheck_keeps_swarms_words(swarm, probes):
    wait = swarm[0]
    wait.return_value = engine.Rollout(False, "3 tasks of the new version failed", [CRASH])
    _, r = _rollout()
    r.spec = ReleaseSpec.from_json({**SPEC, "healthcheck": {"path": "/", "interval": 1}})
    with (
        patch.object(engine, "task_probes", autospec=True, return_value=probes),
        pytest.raises(rollout.RolloutFailed, match="3 tasks of the new version failed"),
    ):
        r.wait()


def test_a_crash_is_named_even_when_a_later_task_of_the_slot_turned_unhealthy(swarm):
    """The new version crashed (exit 1) and was restarted; on a loaded machine the restarted
    task's probes then failed too: the crash is the reason, in Swarm's words."""
    wait = swarm[0]
    wait.return_value = engine.Rollout(False, "Swarm rolled the update back: x", [CRASH, UNHEALTHY])
    _, r = _rollout()
    r.spec = ReleaseSpec.from_json({**SPEC, "healthcheck": {"cmd": "true", "interval": 1}})
    with (
        patch.object(engine, "task_probes", autospec=True, return_value=[_probe(137, "")]),
        pytest.raises(rollout.RolloutFailed) as exc,
    ):
        r.wait()
    assert "non-zero exit (1)" in str(exc.value)
    assert "the healthcheck" not in str(exc.value)


def test_an_output_is_bounded():
    from deployments import health

    assert len(health.probe_output("x" * 5000)) == health.MAX_OUTPUT
