"""A webhook never takes an app backwards (SPEC §4), and an older commit never supersedes a
newer one: git decides in the worker, after the clone (deployments/ordering.py). Real git on
local repositories; only the Docker boundary is patched (nothing here may get to a build
that should not)."""

from __future__ import annotations

import subprocess
from unittest.mock import patch

import pytest

from deployments import logstream, pipeline
from deployments import services as deploy_services
from deployments.boundaries import engine, git
from deployments.models import Deploy
from tests.factories import AppFactory, DeployFactory

# Committed rows, as in the worker: the pipeline's stop check closes a connection that is not
# in autocommit (close_old_connections), which a test's transaction would be.
pytestmark = pytest.mark.django_db(transaction=True)
Status = Deploy.Status


def _git(repo, *args) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e.x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e.x",
        "PATH": "/usr/bin:/bin",
        "HOME": str(repo),
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def origin(tmp_path):
    """main: c0 - c1 - c2 - c3 - c4; side: c1 - s (diverged from main after c1)."""
    repo = tmp_path / "origin"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main", ".")
    shas = {}
    for i in range(5):
        (repo / "Dockerfile").write_text(f"FROM scratch\nLABEL v={i}\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"c{i}")
        shas[f"c{i}"] = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "side", shas["c1"])
    _git(repo, "commit", "-q", "--allow-empty", "-m", "s")
    shas["s"] = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "main")
    return repo, shas


@pytest.fixture(autouse=True)
def _worker(settings, tmp_path, monkeypatch):
    settings.KOYRA_WORKSPACE_DIR = tmp_path / "workspaces"
    settings.KOYRA_ALLOW_FILE_REPOS = True
    monkeypatch.setattr(logstream, "_send", lambda deploy_id, message: None)


@pytest.fixture
def app(origin):
    repo, _ = origin
    return AppFactory(name="octo", repo_url=f"file://{repo}")


@pytest.fixture
def build():
    """The build: reached means the deploy was not superseded; it stops the deploy there."""
    with patch(
        "deployments.boundaries.engine.build",
        autospec=True,
        side_effect=engine.EngineError("stopped at the build by the test"),
    ) as build:
        yield build


def _live(app, commit):
    return DeployFactory(app=app, commit=commit, trigger="push", status=Status.LIVE)


def _run(deploy) -> Deploy:
    return pipeline.deploy_run(deploy_id=deploy.pk)


# --- never backwards --------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["push", "workflow_run"])
@pytest.mark.parametrize("which", ["c1", "c3"])
def test_a_webhook_commit_older_than_the_live_one_is_superseded_without_a_build(
    app, origin, build, trigger, which
):
    _, shas = origin
    live = _live(app, shas["c3"])
    old = deploy_services.deploy_create(app=app, commit=shas[which], trigger=trigger)

    old = _run(old)

    assert old.status == Status.SUPERSEDED
    assert old.error.startswith(f"superseded by the live deploy #{live.pk}: commit ")
    assert f"{shas[which][:12]} is already live or older" in old.error
    assert old.error in old.log_text
    assert "build" not in old.stages
    assert not build.called
    live.refresh_from_db()
    assert live.status == Status.LIVE


def test_a_webhook_commit_newer_than_the_live_one_is_built(app, origin, build):
    _, shas = origin
    _live(app, shas["c1"])
    new = _run(deploy_services.deploy_create(app=app, commit=shas["c4"], trigger="push"))
    assert build.called
    assert new.status == Status.FAILED and "stopped at the build" in new.error


def test_a_commit_of_a_diverged_history_is_built(app, origin, build):
    # A force-push: the new commit is not an ancestor of the live one, so it is not "older".
    _, shas = origin
    _live(app, shas["c3"])
    _run(deploy_services.deploy_create(app=app, commit=shas["s"], trigger="push"))
    assert build.called


def test_a_live_commit_the_repository_no_longer_has_does_not_block_the_deploy(app, origin, build):
    _, shas = origin
    _live(app, "f" * 40)
    d = _run(deploy_services.deploy_create(app=app, commit=shas["c2"], trigger="push"))
    assert build.called
    assert "could not compare" in d.log_text


def test_a_manual_deploy_of_an_older_commit_is_a_users_choice_and_is_built(app, origin, build):
    _, shas = origin
    _live(app, shas["c3"])
    _run(deploy_services.deploy_create(app=app, commit=shas["c1"], trigger="manual"))
    assert build.called


# --- queued against queued --------------------------------------------------------------------


def test_a_webhook_deploy_supersedes_nothing_when_it_is_queued(app, origin):
    _, shas = origin
    newer = deploy_services.deploy_create(app=app, commit=shas["c4"], trigger="workflow_run")
    older = deploy_services.deploy_create(app=app, commit=shas["c2"], trigger="workflow_run")
    assert [Deploy.objects.get(pk=d.pk).status for d in (newer, older)] == [Status.QUEUED] * 2


def test_runs_finishing_out_of_order_end_with_the_newer_commit_built(app, origin, build):
    """c4's run finishes first, c2's last: the worker builds c4 and supersedes c2."""
    _, shas = origin
    newer = deploy_services.deploy_create(app=app, commit=shas["c4"], trigger="workflow_run")
    older = deploy_services.deploy_create(app=app, commit=shas["c2"], trigger="workflow_run")

    newer = _run(newer)
    assert build.call_count == 1  # c4 is built although a deploy was queued after it
    assert newer.status == Status.FAILED  # (the test's stop at the build)
    Deploy.objects.filter(pk=newer.pk).update(status=Status.LIVE)  # as if it went live

    older = _run(older)
    assert older.status == Status.SUPERSEDED
    assert f"the live deploy #{newer.pk}" in older.error
    assert build.call_count == 1


def test_an_older_queued_commit_is_superseded_by_a_newer_queued_one_that_contains_it(
    app, origin, build
):
    _, shas = origin
    older = deploy_services.deploy_create(app=app, commit=shas["c2"], trigger="push")
    newer = deploy_services.deploy_create(app=app, commit=shas["c4"], trigger="push")

    older = _run(older)

    assert older.status == Status.SUPERSEDED
    assert older.error == (
        f"superseded by deploy #{newer.pk}: its commit {shas['c4'][:12]} is newer and contains "
        f"{shas['c2'][:12]}"
    )
    assert not build.called
    assert Deploy.objects.get(pk=newer.pk).status == Status.QUEUED


def test_a_queued_commit_of_another_history_does_not_supersede(app, origin, build):
    _, shas = origin
    first = deploy_services.deploy_create(app=app, commit=shas["c2"], trigger="push")
    deploy_services.deploy_create(app=app, commit=shas["s"], trigger="push")
    _run(first)
    assert build.called


def test_a_users_deploy_still_supersedes_what_was_queued_before_it(app, origin):
    _, shas = origin
    hook = deploy_services.deploy_create(app=app, commit=shas["c4"], trigger="push")
    deploy_services.deploy_create(app=app, commit=shas["c1"], trigger="manual")
    assert Deploy.objects.get(pk=hook.pk).status == Status.SUPERSEDED


def test_a_webhook_deploy_with_a_users_deploy_queued_after_it_is_superseded_unrun(app, origin):
    _, shas = origin
    hook = deploy_services.deploy_create(app=app, commit=shas["c4"], trigger="push")
    Deploy.objects.create(app=app, commit=shas["c1"], trigger="manual")  # no supersede on create
    assert _run(hook).status == Status.SUPERSEDED


# --- the git boundary -------------------------------------------------------------------------


def _clone(origin, tmp_path, commit):
    repo, _ = origin
    dest = tmp_path / f"clone-{commit[:7]}"
    git.clone_at(f"file://{repo}", commit, dest)
    return dest


@pytest.mark.parametrize(
    ("older", "newer", "expected"),
    [
        ("c0", "c4", True),
        ("c3", "c4", True),
        ("c4", "c4", True),
        ("c4", "c0", False),
        ("c2", "s", False),
        ("s", "c4", False),
        ("c1", "s", True),
    ],
)
def test_is_ancestor_answers_from_a_one_commit_deep_clone(origin, tmp_path, older, newer, expected):
    _, shas = origin
    dest = _clone(origin, tmp_path, shas[older])
    assert git.is_ancestor(dest, shas[older], shas[newer]) is expected
    # and from the other side's clone
    dest = _clone(origin, tmp_path / "b", shas[newer])
    assert git.is_ancestor(dest, shas[older], shas[newer]) is expected


def test_is_ancestor_fetches_the_whole_history_when_the_commits_are_far_apart(tmp_path):
    repo = tmp_path / "long"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main", ".")
    for i in range(130):  # more than the first fetch's depth
        _git(repo, "commit", "-q", "--allow-empty", "-m", f"c{i}")
    head = _git(repo, "rev-parse", "HEAD")
    first = _git(repo, "rev-list", "--max-parents=0", "HEAD")
    dest = tmp_path / "clone"
    git.clone_at(f"file://{repo}", head, dest)
    assert git.is_ancestor(dest, first, head) is True
    assert git.is_ancestor(dest, head, first) is False


def test_is_ancestor_names_a_commit_the_repository_does_not_have(origin, tmp_path):
    _, shas = origin
    dest = _clone(origin, tmp_path, shas["c2"])
    with pytest.raises(git.GitError):
        git.is_ancestor(dest, shas["c2"], "e" * 40)


def test_a_started_deploy_is_superseded_only_with_the_reason_its_clone_gave():
    live = DeployFactory(status=Status.LIVE)
    started = DeployFactory(app=live.app, status=Status.BUILDING)
    assert not started.mark_superseded(live)  # a newer queued deploy never stops a build
    assert started.mark_superseded(live, "superseded by the live deploy: already live")
    assert (started.status, started.error) == (
        Status.SUPERSEDED,
        "superseded by the live deploy: already live",
    )
    pushing = DeployFactory(app=live.app, status=Status.PUSHING)
    assert not pushing.mark_superseded(live, "too late: it was built")
