"""Commit messages and authors, recorded at clone from a real local repository (issue 15)."""

from __future__ import annotations

import subprocess

import pytest

from deployments import commits, services
from deployments.boundaries import git
from deployments.models import Deploy
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db


def _commit(repo, message: bytes, author: str = "Ann Dev", encoding: str = "UTF-8") -> str:
    env = {
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": "ann@example.com",
        "GIT_COMMITTER_NAME": "c",
        "GIT_COMMITTER_EMAIL": "c@example.com",
        "PATH": "/usr/bin:/bin",
        "HOME": str(repo),
    }

    def run(*args: str, stdin: bytes | None = None) -> str:
        out = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                             input=stdin)  # fmt: skip
        return out.stdout.decode().strip()

    if not (repo / ".git").exists():
        run("init", "-q", "-b", "main", ".")
    (repo / "f.txt").write_bytes(message[:10])
    run("add", "-A")
    # -F - : the message exactly as given (bytes), as a hostile repository could store it.
    run("-c", f"i18n.commitEncoding={encoding}", "commit", "-q", "--cleanup=verbatim", "-F", "-",
        stdin=message)  # fmt: skip
    return run("rev-parse", "HEAD")


@pytest.fixture
def clone(tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()

    def make(message: bytes, author: str = "Ann Dev"):
        # A message in latin-1 declares it (git's i18n.commitEncoding), as git itself would.
        encoding = "latin-1" if b"\xe9" in message else "UTF-8"
        sha = _commit(origin, message, author, encoding)
        dest = tmp_path / f"work-{sha[:8]}"
        git.clone_at(f"file://{origin}", sha, dest)
        return dest, sha

    return make


def test_it_reads_the_message_and_author_name_of_the_checked_out_commit(clone):
    dest, sha = clone(b"Fix the cart\n\nThe total was off by one.\n", "Ann Dev")
    info = git.commit_info(dest, sha)
    assert info == git.CommitInfo(message="Fix the cart\n\nThe total was off by one.",
                                  author="Ann Dev")  # fmt: skip


@pytest.mark.parametrize(
    "raw,stored",
    [
        (b"plain", "plain"),
        (b"\x1b[31mred\x1b[0m and a bell\x07", "[31mred[0m and a bell"),
        (b"tab\there\r\nwindows line", "tab\there\nwindows line"),
        (b"caf\xe9 (latin-1, declared)", "café (latin-1, declared)"),
        ("日本語 ✓".encode(), "日本語 ✓"),
        (b"<script>alert('x')</script> \"q\"", "<script>alert('x')</script> \"q\""),
    ],
)
def test_what_is_stored_is_the_message_without_control_characters(clone, raw, stored):
    dest, sha = clone(raw)
    deploy = DeployFactory(commit=sha)
    said: list[str] = []
    commits.commit_record(deploy=deploy, workspace=dest, say=said.append)
    deploy.refresh_from_db()
    assert deploy.commit_message == stored  # templates escape it: stored as written
    assert deploy.commit_author == "Ann Dev"
    assert said == [f"commit: {stored.splitlines()[0]} (Ann Dev)"]


def test_bytes_that_are_not_text_do_not_fail_the_deploy(tmp_path):
    # An undeclared non-UTF-8 message: git passes the bytes through as they are.
    origin = tmp_path / "raw"
    origin.mkdir()
    sha = _commit(origin, b"ok \xff\xfe end")
    info = git.commit_info(origin, sha)
    assert info.message.startswith("ok ") and info.message.endswith(" end")


def test_long_messages_and_names_are_bounded(clone):
    dest, sha = clone(b"s" * 5000, "n" * 300)
    deploy = DeployFactory(commit=sha)
    commits.commit_record(deploy=deploy, workspace=dest, say=lambda s: None)
    deploy.refresh_from_db()
    assert len(deploy.commit_message) == commits.MAX_MESSAGE
    assert deploy.commit_message.endswith("…")
    assert len(deploy.commit_author) == commits.MAX_AUTHOR


def test_a_commit_git_cannot_describe_costs_the_deploy_nothing(tmp_path):
    deploy = DeployFactory(commit="a" * 40)
    said: list[str] = []
    commits.commit_record(deploy=deploy, workspace=tmp_path / "absent", say=said.append)
    assert said and said[0].startswith("commit message not recorded:")
    deploy.refresh_from_db()
    assert (deploy.commit_message, deploy.commit_author) == ("", "")


def test_a_redeploy_or_rollback_carries_its_sources_commit_words(monkeypatch):
    monkeypatch.setattr(services, "deploy_enqueue", lambda *, deploy_id: True)
    app = AppFactory()
    source = DeployFactory(
        app=app, status=Deploy.Status.LIVE, commit_message="v1", commit_author="A"
    )
    again = services.deploy_create(app=app, commit=source.commit, trigger="redeploy", source=source)
    assert (again.commit_message, again.commit_author) == ("v1", "A")
    fresh = services.deploy_create(app=app, trigger="manual")
    assert (fresh.commit_message, fresh.commit_author) == ("", "")
