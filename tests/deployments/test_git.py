"""The git boundary against real local repositories (git is on every machine this runs on)."""

from __future__ import annotations

import subprocess

import pytest

from deployments.boundaries import git


def _run(repo, *args):
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
    repo = tmp_path / "origin"
    repo.mkdir()
    _run(repo, "init", "-q", "-b", "main", ".")
    shas = []
    for i in range(3):
        (repo / "file.txt").write_text(f"v{i}\n")
        _run(repo, "add", "-A")
        _run(repo, "commit", "-q", "-m", f"v{i}")
        shas.append(_run(repo, "rev-parse", "HEAD"))
    _run(repo, "checkout", "-q", "-b", "release/v2")
    return repo, shas


def test_it_resolves_a_branch_head(origin):
    repo, shas = origin
    assert git.resolve(f"file://{repo}", "main") == shas[-1]
    assert git.resolve(f"file://{repo}", "release/v2") == shas[-1]


def test_a_missing_branch_is_named(origin):
    repo, _ = origin
    with pytest.raises(git.GitError, match="branch 'nope' was not found"):
        git.resolve(f"file://{repo}", "nope")


@pytest.mark.parametrize("which", [0, 1, 2])
def test_it_checks_out_exactly_the_commit_asked_for(origin, tmp_path, which):
    repo, shas = origin
    dest = tmp_path / f"work-{which}"
    assert git.clone_at(f"file://{repo}", shas[which], dest) == shas[which]
    assert (dest / "file.txt").read_text() == f"v{which}\n"


def test_a_commit_the_repository_does_not_have_fails_clearly(origin, tmp_path):
    repo, _ = origin
    with pytest.raises(git.GitError, match="git"):
        git.clone_at(f"file://{repo}", "f" * 40, tmp_path / "w")


def test_transports_that_run_commands_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(git.GitError):
        git.resolve(f"ext::sh -c touch% {marker}", "main")
    assert not marker.exists()


def test_a_stop_request_kills_git(origin, tmp_path):
    repo, shas = origin
    with pytest.raises(git.GitError, match="stopped"):
        git.clone_at(f"file://{repo}", shas[0], tmp_path / "w", should_stop=lambda: True)
