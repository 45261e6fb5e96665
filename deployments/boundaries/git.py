"""The git boundary: every call is an argv list, URLs and refs are data after `--`."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class GitError(Exception):
    """A git operation failed; the message carries git's own words."""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "SSH_AUTH_SOCK", "LANG")}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="/bin/true",
        GIT_SSH_COMMAND="ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
        GIT_CONFIG_NOSYSTEM="1",
    )
    return env


# Only the transports Koyra accepts; git's ext:: and friends can run commands.
_PROTOCOLS = [
    "-c",
    "protocol.allow=never",
    "-c",
    "protocol.https.allow=always",
    "-c",
    "protocol.ssh.allow=always",
    "-c",
    "protocol.file.allow=always",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "advice.detachedHead=false",
]


def _git(
    args: list[str],
    *,
    cwd: Path | None = None,
    timeout: float = 600,
    should_stop: Callable[[], bool] = lambda: False,
) -> str:
    if should_stop():
        raise GitError(f"git {args[0]} stopped (cancelled or timed out)")
    proc = subprocess.Popen(
        ["git", *_PROTOCOLS, *args],
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, err = proc.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if should_stop() or time.monotonic() > deadline:
                proc.kill()
                proc.communicate()
                raise GitError(f"git {args[0]} stopped (cancelled or timed out)") from None
    if proc.returncode != 0:
        msg = (err or out).strip().splitlines()
        raise GitError(f"git {args[0]} failed: {' '.join(msg[-3:]) or proc.returncode}")
    return out


def resolve(url: str, branch: str, *, timeout: float = 120) -> str:
    """The commit SHA at the head of `branch` in the remote repository."""
    out = _git(["ls-remote", "--", url, f"refs/heads/{branch}"], timeout=timeout)
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    raise GitError(f"branch {branch!r} was not found in {url}")


def clone_at(
    url: str,
    commit: str,
    dest: Path,
    *,
    timeout: float = 600,
    should_stop: Callable[[], bool] = lambda: False,
) -> str:
    """Check out exactly `commit` of `url` into `dest` (created), shallow where the server
    allows fetching by SHA, full otherwise. Returns the checked-out SHA."""
    dest.mkdir(parents=True, exist_ok=False)

    def git_in_dest(args: list[str]) -> str:
        return _git(args, cwd=dest, timeout=timeout, should_stop=should_stop)

    git_in_dest(["init", "--quiet", "."])
    git_in_dest(["remote", "add", "origin", "--", url])
    try:
        git_in_dest(["fetch", "--quiet", "--depth", "1", "origin", "--", commit])
    except GitError:
        if should_stop():
            raise
        # Servers that refuse a fetch by SHA: take every branch, then find the commit.
        git_in_dest(["fetch", "--quiet", "origin", "--", "+refs/heads/*:refs/remotes/origin/*"])
    git_in_dest(["checkout", "--quiet", "--detach", commit, "--"])
    head = git_in_dest(["rev-parse", "HEAD"]).strip()
    if head != commit:
        raise GitError(f"checked out {head} instead of {commit}")
    return head
