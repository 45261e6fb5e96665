"""The git boundary uses the app's own credentials and nothing of the server's (issue 11): an
empty HOME per call, no global or system config, no credential helper, no SSH agent, no
~/.ssh, pinned host keys only. Against real local repositories and real servers on loopback
(tests/git_servers.py); `ssh` seen through a recording wrapper first on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from deployments.boundaries import git
from tests.git_servers import HttpGitServer, ServerKeys, SshGitServer, bare_copy, ssh_keypair

needs_sshd = pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="no openssh-server")


def _git(repo: Path, *args: str) -> str:
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


def _repo(path: Path, text: str) -> tuple[Path, str]:
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main", ".")
    (path / "file.txt").write_text(text)
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", text)
    return path, _git(path, "rev-parse", "HEAD")


@pytest.fixture
def server_home(tmp_path, monkeypatch):
    """The server's own HOME and config, as an operator might have them: a credential helper
    that hands out the operator's token (and leaves a mark), a rewrite of the app's URL
    (tmp_path/origin) to another repository, an SSH agent socket. None of it may reach an
    app's clone."""
    home = tmp_path / "server-home"
    home.mkdir()
    mark = tmp_path / "helper-was-called"
    evil, _ = _repo(tmp_path / "evil", "evil\n")
    rewrite = f'[url "file://{evil}"]\n\tinsteadOf = file://{tmp_path / "origin"}\n'
    (home / ".gitconfig").write_text(
        f'[credential]\n\thelper = "!f() {{ touch {mark}; echo username=op; '
        f'echo password=operator-token; }}; f"\n{rewrite}'
    )
    xdg = home / ".config" / "git"
    xdg.mkdir(parents=True)
    (xdg / "config").write_text(rewrite)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.file://{evil}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", f"file://{tmp_path / 'origin'}")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
    return mark


def test_the_servers_git_config_and_url_rewrites_are_not_used(server_home, tmp_path):
    origin, sha = _repo(tmp_path / "origin", "the app's own\n")
    assert git.resolve(f"file://{origin}", "main") == sha
    dest = tmp_path / "work"
    assert git.clone_at(f"file://{origin}", sha, dest) == sha
    assert (dest / "file.txt").read_text() == "the app's own\n"


def test_each_call_gets_an_empty_home_removed_afterwards(server_home, tmp_path, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    origin, sha = _repo(tmp_path / "origin", "x\n")
    git.clone_at(f"file://{origin}", sha, tmp_path / "work", auth=git.GitAuth(token="t0k"))
    assert list(temp.iterdir()) == []  # HOME, key file and known hosts all gone


@pytest.fixture
def keys(tmp_path) -> ServerKeys:
    return ServerKeys.make(tmp_path / "server-keys")


@pytest.fixture
def served(tmp_path) -> tuple[Path, str]:
    origin, sha = _repo(tmp_path / "origin", "private\n")
    root = tmp_path / "served"
    root.mkdir()
    return bare_copy(origin, root), sha


def test_the_servers_credential_helper_never_answers_for_an_app(
    server_home, keys, served, settings
):
    bare, _ = served
    settings.KOYRA_GIT_CA_FILE = str(keys.ca_file)
    server = HttpGitServer(bare.parent, token="operator-token", keys=keys)
    try:
        with pytest.raises(git.GitError, match="this app has no HTTPS token"):
            git.resolve(server.url(bare), "main", auth=git.GitAuth(app="shop"))
    finally:
        server.stop()
    assert not server_home.exists()
    assert not [h for _, _, h in server.requests if "Authorization" in h]


def test_the_apps_token_clones_over_https_and_stays_out_of_the_checkout(keys, served, settings):
    bare, sha = served
    settings.KOYRA_GIT_CA_FILE = str(keys.ca_file)
    token = "github_pat_" + "a1" * 20
    server = HttpGitServer(bare.parent, token=token, keys=keys)
    dest = Path(str(bare.parent)) / "work"
    try:
        got = git.clone_at(server.url(bare), sha, dest, auth=git.GitAuth(token=token))
    finally:
        server.stop()
    assert got == sha
    for path in (dest / ".git").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_without_the_ca_file_a_self_signed_server_is_refused(keys, served, settings):
    bare, _ = served
    settings.KOYRA_GIT_CA_FILE = ""
    server = HttpGitServer(bare.parent, token="t", keys=keys)
    try:
        with pytest.raises(git.GitError, match="KOYRA_GIT_CA_FILE"):
            git.resolve(server.url(bare), "main", auth=git.GitAuth(token="t"))
    finally:
        server.stop()


@pytest.fixture
def ssh_recorder(tmp_path, monkeypatch):
    """`ssh` first on PATH: records its arguments, environment, key file mode and known
    hosts, then runs the real ssh."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "ssh-record"
    record.mkdir()
    real = shutil.which("ssh")
    script = bindir / "ssh"
    script.write_text(
        "#!/bin/sh\n"
        f'rec={record}\nprintf "%s\\n" "$@" > "$rec/args"\nenv > "$rec/env"\n'
        'prev=""\nfor a in "$@"; do\n'
        '  if [ "$prev" = "-i" ]; then\n'
        '    stat -c %a "$a" > "$rec/key_mode"; echo "$a" > "$rec/key"\n'
        "  fi\n"
        '  case "$a" in\n'
        '    UserKnownHostsFile=*) cp "${a#UserKnownHostsFile=}" "$rec/known_hosts";;\n'
        "  esac\n"
        '  prev="$a"\ndone\n'
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return record


@needs_sshd
def test_ssh_gets_only_the_deploy_key_and_pinned_hosts(
    server_home, ssh_recorder, keys, served, tmp_path, settings
):
    bare, sha = served
    settings.KOYRA_GIT_KNOWN_HOSTS = keys.known_hosts_line() + "\n\n"
    app_key = ssh_keypair(tmp_path / "app_key")
    server = SshGitServer(tmp_path / "sshd", host_key=keys.ssh_host_key, repo=bare, keys=[app_key])
    auth = git.GitAuth(ssh_key=(tmp_path / "app_key").read_text(), app="shop")
    try:
        assert git.resolve(server.url, "main", auth=auth) == sha
    finally:
        server.stop()
    args = (ssh_recorder / "args").read_text().splitlines()
    env = (ssh_recorder / "env").read_text()
    assert "SSH_AUTH_SOCK" not in env
    assert f"HOME={Path.home()}" not in env and "HOME=" in env
    assert (ssh_recorder / "key_mode").read_text().strip() == "600"
    assert not Path((ssh_recorder / "key").read_text().strip()).exists()  # removed after
    for option in ("StrictHostKeyChecking=yes", "IdentitiesOnly=yes", "IdentityAgent=none"):
        assert option in args
    assert not [a for a in args if "accept-new" in a or "StrictHostKeyChecking=no" in a]
    assert args[:2] == ["-F", "/dev/null"]  # not the server user's ~/.ssh/config
    known = (ssh_recorder / "known_hosts").read_text()
    assert known == git.GITHUB_KNOWN_HOSTS + keys.known_hosts_line() + "\n"
    assert "operator-token" not in env


@needs_sshd
def test_the_servers_ssh_agent_is_never_asked(keys, served, tmp_path, settings, monkeypatch):
    """A running agent holding a key the server accepts: an app without a deploy key is still
    refused, and says which credential is missing."""
    bare, _ = served
    settings.KOYRA_GIT_KNOWN_HOSTS = keys.known_hosts_line()
    operator_key = ssh_keypair(tmp_path / "operator_key")
    agent = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True).stdout
    sock = agent.split("SSH_AUTH_SOCK=")[1].split(";")[0]
    pid = int(agent.split("SSH_AGENT_PID=")[1].split(";")[0])
    server = SshGitServer(
        tmp_path / "sshd", host_key=keys.ssh_host_key, repo=bare, keys=[operator_key]
    )
    try:
        agent_env = {**os.environ, "SSH_AUTH_SOCK": sock}
        subprocess.run(["ssh-add", str(tmp_path / "operator_key")], env=agent_env, check=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", sock)
        with pytest.raises(git.GitError, match="this app has no deploy key"):
            git.resolve(server.url, "main", auth=git.GitAuth(app="shop"))
    finally:
        server.stop()
        os.kill(pid, 15)
    assert "Accepted publickey" not in server.log.read_text()


def test_a_repr_of_the_credentials_holds_none_of_them():
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
    auth = git.GitAuth(ssh_key=key, token="s3cr3t-value", app="shop")
    for text in (repr(auth), str(auth), f"{auth!r} {auth}"):
        assert "s3cr3t" not in text and "PRIVATE" not in text and "b3Blbn" not in text


def test_the_built_in_github_keys_are_githubs_published_fingerprints(tmp_path):
    hosts = tmp_path / "known_hosts"
    hosts.write_text(git.GITHUB_KNOWN_HOSTS)
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(hosts)], capture_output=True, text=True, check=True
    ).stdout
    assert sorted(line.split()[1] for line in out.splitlines()) == sorted(
        [
            "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
            "SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM",
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
        ]
    )
