"""The git boundary: every call is an argv list, URLs and refs are data after `--`."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


class GitError(Exception):
    """A git operation failed; the message carries git's own words."""


@dataclass(frozen=True)
class GitAuth:
    """The app's own credentials for its repository; empty for a public one. Every call that
    reaches the remote takes it, and git never sees the server's own credentials."""

    ssh_key: str = ""  # an OpenSSH private key (the app's deploy key)
    token: str = ""  # an HTTPS token (a fine-grained personal access token)
    app: str = ""  # the app's name: messages say which command fixes a refused clone

    def __repr__(self) -> str:  # never a credential in a traceback or a log
        return (
            f"GitAuth(ssh_key={'set' if self.ssh_key else ''}, token={'set' if self.token else ''}"
            f", app={self.app!r})"
        )


# GitHub's SSH host keys, exactly as GitHub publishes them: the docs page "GitHub's SSH key
# fingerprints" and the `ssh_keys` of https://api.github.com/meta (the RSA key is the one of the
# 2023-03-24 rotation). Their SHA256 fingerprints (ssh-keygen -lf) are
#   +DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU (ed25519)
#   p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM (ecdsa)
#   uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s (rsa)
# Other servers: KOYRA_GIT_KNOWN_HOSTS. Never trust on first use.
GITHUB_KNOWN_HOSTS = (
    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    "github.com ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQE"
    "ezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=\n"
    "github.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCj7ndNxQowgcQnjshcLrqPEiiphnt+VTTvDP6mHBL9j1"
    "aNUkY4Ue1gvwnGLVlOhGeYrnZaMgRK6+PKCUXaDbC7qtbW8gIkhL7aGCsOr/C56SJMy/BCZfxd1nWzAOxSDPgVsmer"
    "OBYfNqltV9/hWCqBywINIR+5dIg6JTJ72pcEpEjcYgXkE2YEFXV1JHnsKgbLWNlhScqb2UmyRkQyytRLtL+38TGxkx"
    "CflmO+5Z8CSSNY7GidjMIZ7Q4zMjA2n1nGrlTDkzwDCsw+wqFPGQA179cnfGWOWRVruj16z6XyvxvjJwbz0wQZ75XK5"
    "tKSb7FNyeIEs4TT4jk+S4dhPeAUC5y+bDYirYgM4GC7uEnztnZyaVWQ7B381AK4Qdrwt51ZqExKbQpTUNn+EjqoTwvq"
    "Nj4kqx5QUCI0ThS/YkOxJCXmPUWZbhjpCg56i+2aB6CmK2JGhn57K5mj0MNdBXA4/WnwH6XoPWJzK5Nyu2zB3nAZp+S"
    "5hpQs+p1vN1/wsjk=\n"
)

# The one credential helper git has for an app with a token, defined in git's environment
# config (GIT_CONFIG_COUNT): git asks it only when the server it talks to asks for a login,
# and the shell reads the token from the environment with builtins, so it is never in an
# argument, a URL, a file (a noexec /tmp does not matter) or the checkout's .git/config.
_TOKEN_HELPER = (
    '!f() { test "$1" = get || return 0; printf "username=x-access-token\\n"; '
    'printf "password=%s\\n" "$KOYRA_GIT_TOKEN"; }; f'
)


@contextlib.contextmanager
def _isolated(auth: GitAuth | None) -> Iterator[dict[str, str]]:
    """The environment of one git call: an empty HOME of its own, none of the server's config,
    credential helpers, SSH agent, keys or known hosts; only `auth`, removed afterwards."""
    auth = auth or GitAuth()
    home = Path(tempfile.mkdtemp(prefix="koyra-git-"))  # 0700, this process's user only
    try:
        known_hosts = home / "known_hosts"
        known_hosts.write_text(GITHUB_KNOWN_HOSTS + _extra_known_hosts())
        ssh = [
            "ssh", "-F", "/dev/null",  # not ~/.ssh/config (ssh reads the passwd home, not HOME)
            "-o", "BatchMode=yes", "-o", "IdentityAgent=none", "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no",
            "-o", "ForwardAgent=no", "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
            "-o", "HostbasedAuthentication=no", "-o", "ConnectTimeout=30",
        ]  # fmt: skip
        if auth.ssh_key:
            key = home / "deploy_key"
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(auth.ssh_key.strip() + "\n")
            ssh += ["-i", str(key)]
        else:
            # No -i would make ssh load ~/.ssh/id_* of the server's user: no key at all instead.
            ssh += ["-o", "PubkeyAuthentication=no"]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",  # git's and ssh's messages in English: _explain reads them
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_SSH_COMMAND": shlex.join(ssh),
            "GIT_SSH_VARIANT": "ssh",
        }
        # The server's credential helpers are gone with its config; an empty value first
        # resets the list anyway, then the app's token is the only helper.
        helpers = ["", _TOKEN_HELPER] if auth.token else [""]
        env["GIT_CONFIG_COUNT"] = str(len(helpers))
        for i, helper in enumerate(helpers):
            env.update(
                {f"GIT_CONFIG_KEY_{i}": "credential.helper", f"GIT_CONFIG_VALUE_{i}": helper}
            )
        if auth.token:
            env["KOYRA_GIT_TOKEN"] = auth.token
        yield env
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _extra_known_hosts() -> str:
    lines = str(getattr(settings, "KOYRA_GIT_KNOWN_HOSTS", "") or "").splitlines()
    return "".join(f"{line.strip()}\n" for line in lines if line.strip())


def _config() -> list[str]:
    """Per-call config in argv (never a secret here)."""
    ca_file = str(getattr(settings, "KOYRA_GIT_CA_FILE", "") or "")
    return ["-c", f"http.sslCAInfo={ca_file}"] if ca_file else []


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
    auth: GitAuth | None = None,
) -> str:
    """Run git with `args` in an isolated environment (_isolated) holding only `auth`."""
    if should_stop():
        raise GitError(f"git {args[0]} stopped (cancelled or timed out)")
    with _isolated(auth) as env:
        return _run(args, cwd=cwd, env=env, timeout=timeout, should_stop=should_stop, auth=auth)


def _run(
    args: list[str],
    *,
    cwd: Path | None,
    env: dict[str, str],
    timeout: float,
    should_stop: Callable[[], bool],
    auth: GitAuth | None,
) -> str:
    proc = subprocess.Popen(
        ["git", *_PROTOCOLS, *_config(), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",  # a commit message or file name need not be valid UTF-8
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
        words = " ".join(msg[-3:]) or str(proc.returncode)
        raise GitError(_explain(err or out, auth or GitAuth()) or f"git {args[0]} failed: {words}")
    return out


_HOST_KEY_RE = re.compile(r"(?:host key is known for|Host key for|key for) (\S+?)(?: |\.?$)", re.M)


def _explain(err: str, auth: GitAuth) -> str:
    """What a refused clone means for the user, and what to do; "" when it is not about access.
    Never a credential: git's and ssh's words here name hosts and paths only."""
    app = auth.app or "APP"
    if "Host key verification failed" in err:
        m = _HOST_KEY_RE.search(err)
        host = m.group(1) if m else "the ssh server"
        return (
            f"the host key of {host} is not a pinned one, so Koyra did not connect (it never "
            "trusts a key on first use): GitHub's keys are built in; for another server add its "
            "known_hosts lines (ssh-keyscan, checked against the server's own fingerprints) to "
            "KOYRA_GIT_KNOWN_HOSTS (or KOYRA_GIT_KNOWN_HOSTS_FILE) and restart the worker"
        )
    if "Permission denied (publickey" in err:
        if auth.ssh_key:
            return (
                "the ssh server refused the app's deploy key: add the public key (python "
                f"manage.py deploy_key {app} prints it; also on the app page) to the "
                "repository's Deploy keys (GitHub: Settings → Deploy keys)"
            )
        return (
            "the ssh server asked for a key and this app has no deploy key: make one with "
            f"python manage.py deploy_key {app} and add its public key to the repository's "
            "Deploy keys, or use the https:// URL with a token (set_repo_token)"
        )
    if "could not read Username" in err or "could not read Password" in err:
        return (
            "the repository asked for a login and this app has no HTTPS token: set one with "
            f"python manage.py set_repo_token {app} (token on stdin; a fine-grained token with "
            "read access to Contents), or add the app's deploy key (python manage.py deploy_key "
            f"{app}) to the repository and use its ssh URL"
        )
    if "Authentication failed" in err or "The requested URL returned error: 403" in err:
        return (
            "the server refused the app's HTTPS token: set a valid one with python manage.py "
            f"set_repo_token {app} (a fine-grained token with read access to this repository's "
            "Contents, not expired)"
        )
    if "Repository not found" in err or "repository not found" in err.lower():
        given = "deploy key" if auth.ssh_key else "token" if auth.token else "no credentials"
        return (
            f"the server says the repository does not exist for the app's {given}: check the "
            f"URL, and that the repository's Deploy keys (deploy_key {app}) or the token "
            f"(set_repo_token {app}) give access to it"
        )
    if "SSL certificate problem" in err or "server certificate verification failed" in err:
        return (
            "the git server's TLS certificate is not trusted: for a self-hosted server, set "
            "KOYRA_GIT_CA_FILE to the bundle of its certificate authority and restart the worker"
        )
    return ""


def resolve(url: str, branch: str, *, timeout: float = 120, auth: GitAuth | None = None) -> str:
    """The commit SHA at the head of `branch` in the remote repository."""
    out = _git(["ls-remote", "--", url, f"refs/heads/{branch}"], timeout=timeout, auth=auth)
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
    auth: GitAuth | None = None,
) -> str:
    """Check out exactly `commit` of `url` into `dest` (created), shallow where the server
    allows fetching by SHA, full otherwise. Returns the checked-out SHA. `auth` is given to
    git for this clone only: nothing of it stays in `dest` (no URL with a token, no config)."""
    dest.mkdir(parents=True, exist_ok=False)

    def git_in_dest(args: list[str]) -> str:
        return _git(args, cwd=dest, timeout=timeout, should_stop=should_stop, auth=auth)

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


@dataclass(frozen=True)
class CommitInfo:
    message: str  # the whole message, as git stores it (untrusted repository content)
    author: str  # the author's name (no e-mail address)


def commit_info(dest: Path, commit: str = "HEAD", *, timeout: float = 60) -> CommitInfo:
    """The message and author name of `commit` in the checkout `dest` (a clone_at() one):
    read from the local clone, nothing is fetched."""
    if not dest.is_dir():
        raise GitError(f"{dest} is not a checkout")
    args = ["log", "-1", "--no-show-signature", "--format=%an%x00%B", commit, "--"]
    out = _git(args, cwd=dest, timeout=timeout)
    author, _, message = out.partition("\x00")
    return CommitInfo(message=message.strip(), author=author.strip())


# How much history is fetched first to compare two commits: runs that finish out of order are
# a few commits apart; diverged histories (a force-push) fetch everything.
_ANCESTRY_DEPTH = 100


def is_ancestor(
    dest: Path,
    older: str,
    newer: str,
    *,
    timeout: float = 600,
    should_stop: Callable[[], bool] = lambda: False,
    auth: GitAuth | None = None,
) -> bool:
    """Whether commit `older` is `newer` or one of its ancestors, both commits of the
    repository that `dest` is a clone_at() of. Fetches from its origin what the answer needs:
    the last commits of both first (clone_at's clone is one commit deep), the whole history
    only when those do not tell. A commit the origin does not have is a GitError."""
    if older == newer:
        return True

    def git(args: list[str]) -> str:
        return _git(args, cwd=dest, timeout=timeout, should_stop=should_stop, auth=auth)

    def reaches(tip: str, commit: str) -> bool:
        # Nothing of `commit`'s history outside `tip`'s: `commit` is `tip` or an ancestor. In
        # a shallow clone a "yes" is certain, a "no" may be the history cut short.
        return not git(["rev-list", "--max-count=1", commit, "--not", tip, "--"]).strip()

    def shallow() -> bool:
        return git(["rev-parse", "--is-shallow-repository"]).strip() == "true"

    if shallow():
        git(["fetch", "--quiet", "--depth", str(_ANCESTRY_DEPTH), "origin", "--", older, newer])
    if reaches(newer, older):
        return True
    if reaches(older, newer) or not shallow():
        return False  # `newer` is older than `older`, or the whole history says no
    git(["fetch", "--quiet", "--unshallow", "origin", "--", older, newer])
    return reaches(newer, older)
