"""Private repositories end to end (issue 12, SPEC §6 deploy_key / set_repo_token): a real
OpenSSH server on loopback serving a bare repository only to the app's deploy key, and git's
own `git http-backend` behind an HTTPS server that asks for a token (tests/git_servers.py).
Real worker, engine, Swarm and registry; the worker trusts only the session's test host key
and CA (conftest's git_server_keys), besides GitHub's built-in keys."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import threading
from pathlib import Path

import pytest

from apps import services as app_services
from apps.models import App
from deployments import services
from deployments.boundaries import engine, git
from deployments.models import Deploy, LogLine
from secrets_vault import repo_access
from tests.e2e.conftest import httpd_app, wait_deploy
from tests.git_servers import HttpGitServer, ServerKeys, SshGitServer, bare_copy, tree_contains

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def private_repo(cluster_ready, make_repo, tmp_path):
    """A sample app's repository, as a bare copy the servers serve; (bare path, head SHA)."""
    repo = make_repo()
    sha = repo.commit(httpd_app(cluster_ready["base"], "private v1"), "v1")
    served = tmp_path / "served"
    served.mkdir()
    return bare_copy(repo.path, served), sha


@pytest.fixture
def servers():
    started: list[SshGitServer | HttpGitServer] = []
    yield started
    for s in started:
        s.stop()


def _app(unique_name, prefix: str) -> App:
    # A placeholder URL until the server (which needs the app's key first) has its port.
    app, _ = app_services.app_create(
        name=unique_name(prefix), repo_url="ssh://git@127.0.0.1:1/none.git", branch="main"
    )
    return app


def _deploy(app: App, url: str) -> Deploy:
    App.objects.filter(pk=app.pk).update(repo_url=url)
    return wait_deploy(services.deploy_create(app=app, trigger="manual"))


def _log(deploy: Deploy) -> str:
    return "\n".join(LogLine.objects.filter(deploy=deploy).values_list("text", flat=True))


def test_the_deploy_key_clones_a_private_repository_over_ssh(
    worker, unique_name, private_repo, servers, git_server_keys, tmp_path
):
    bare, sha = private_repo
    app = _app(unique_name, "sshkey")
    access, made = repo_access.deploy_key_make(app=app)
    assert made and access.deploy_key_public.startswith("ssh-ed25519 ")
    ssh = SshGitServer(
        tmp_path / "sshd",
        host_key=git_server_keys.ssh_host_key,
        repo=bare,
        keys=[access.deploy_key_public],
    )
    servers.append(ssh)

    deploy = _deploy(app, ssh.url)

    assert deploy.status == Deploy.Status.LIVE, (deploy.error, _log(deploy))
    assert deploy.commit == sha
    assert "Accepted publickey" in ssh.log.read_text()
    # The private key never reaches the log, not even one line of it.
    private = repo_access.repo_auth(app=app).ssh_key
    assert "PRIVATE KEY" in private
    log = _log(deploy)
    assert not [line for line in private.splitlines()[1:-1] if line in log]


def test_without_the_key_or_with_another_apps_key_the_clone_is_refused(
    worker, unique_name, private_repo, servers, git_server_keys, tmp_path
):
    bare, _ = private_repo
    owner = _app(unique_name, "owner")
    owner_key, _ = repo_access.deploy_key_make(app=owner)
    ssh = SshGitServer(
        tmp_path / "sshd",
        host_key=git_server_keys.ssh_host_key,
        repo=bare,
        keys=[owner_key.deploy_key_public],
    )
    servers.append(ssh)

    no_key = _app(unique_name, "nokey")
    failed = _deploy(no_key, ssh.url)
    assert failed.status == Deploy.Status.FAILED
    assert "asked for a key and this app has no deploy key" in failed.error
    assert f"python manage.py deploy_key {no_key.name}" in failed.error

    other = _app(unique_name, "otherkey")
    repo_access.deploy_key_make(app=other)
    refused = _deploy(other, ssh.url)
    assert refused.status == Deploy.Status.FAILED
    assert "the ssh server refused the app's deploy key" in refused.error
    assert "Deploy keys" in refused.error
    assert "Failed publickey" in ssh.log.read_text()
    assert engine.service_get(no_key.service_name) is None
    assert engine.service_get(other.service_name) is None


def test_a_server_whose_host_key_is_not_the_pinned_one_is_refused(
    worker, unique_name, private_repo, servers, tmp_path
):
    """Same address and port pattern as the pinned server, another host key: a server in its
    place (or a new self-hosted one nobody pinned) gets no connection, never trust on first use."""
    bare, _ = private_repo
    impostor_keys = ServerKeys.make(tmp_path)
    app = _app(unique_name, "hostkey")
    access, _ = repo_access.deploy_key_make(app=app)
    ssh = SshGitServer(
        tmp_path / "sshd",
        host_key=impostor_keys.ssh_host_key,
        repo=bare,
        keys=[access.deploy_key_public],
    )
    servers.append(ssh)

    deploy = _deploy(app, ssh.url)

    assert deploy.status == Deploy.Status.FAILED
    assert f"host key of [127.0.0.1]:{ssh.port} is not a pinned one" in deploy.error
    assert "KOYRA_GIT_KNOWN_HOSTS" in deploy.error
    assert "Accepted publickey" not in ssh.log.read_text()


class _Watch:
    """Samples every process's arguments (`ps -eo args`) and the deploy's checkout while a
    deploy runs: what another user of the machine could read."""

    def __init__(self, workspace: Path, token: str) -> None:
        self.workspace, self.token = workspace, token
        self.args: set[str] = set()
        self.checkout_hits: list[str] = []
        self.saw_checkout = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            self.args.update(out.splitlines())
            if (self.workspace / ".git").is_dir():
                self.saw_checkout = True
                with contextlib.suppress(OSError):  # removed meanwhile
                    self.checkout_hits += tree_contains(self.workspace / ".git", self.token)
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_the_token_clones_over_https_and_appears_nowhere_else(
    worker, unique_name, cluster_ready, make_repo, servers, git_server_keys, tmp_path, settings
):
    token = f"github_pat_{secrets.token_hex(20)}"
    repo = make_repo()
    files = httpd_app(cluster_ready["base"], "https v1", extra_run="COPY leak.txt /leak.txt\n")
    # The repository itself prints the token in the build log: the log must redact it.
    files["leak.txt"] = f"leaked {token} here\n"
    files["Dockerfile"] += "RUN cat /leak.txt\n"
    sha = repo.commit(files, "v1")
    root = tmp_path / "served"
    root.mkdir()
    bare = bare_copy(repo.path, root)
    https = HttpGitServer(root, token=token, keys=git_server_keys, delay=0.3)
    servers.append(https)
    app, _ = app_services.app_create(
        name=unique_name("https"), repo_url=https.url(bare), branch="main"
    )
    repo_access.repo_token_set(app=app, token=token)

    deploy = services.deploy_create(app=app, trigger="manual")
    watch = _Watch(Path(settings.KOYRA_WORKSPACE_DIR) / f"deploy-{deploy.pk}", token)
    try:
        deploy = wait_deploy(deploy)
    finally:
        watch.stop()

    assert deploy.status == Deploy.Status.LIVE, (deploy.error, _log(deploy))
    assert deploy.commit == sha
    # The server got the token, as a Basic password, never in a URL.
    assert any("Authorization" in h for _, _, h in https.requests)
    assert not [p for _, p, _ in https.requests if token in p]
    # Not in the log (the build printed it: redacted), not in any process's arguments.
    log = _log(deploy)
    assert "leaked **** here" in log and token not in log
    git_args = [a for a in watch.args if "git" in a and ("remote-https" in a or "fetch" in a)]
    assert git_args, "the sampler never saw the clone's git processes"
    assert not [a for a in watch.args if token in a]
    # Not in the checkout's .git (config, FETCH_HEAD, logs...) while it existed (its work
    # tree has the token: leak.txt).
    assert watch.saw_checkout, "the sampler never saw the checkout"
    assert watch.checkout_hits == []

    # The same clone, kept this time: nothing of the token in any file of it.
    settings.KOYRA_GIT_CA_FILE = str(git_server_keys.ca_file)
    dest = tmp_path / "checkout"
    auth = git.GitAuth(token=token, app=app.name)
    assert git.clone_at(https.url(bare), sha, dest, auth=auth) == sha
    assert (dest / ".git" / "config").read_text().count(https.url(bare)) == 1
    assert tree_contains(dest / ".git", token) == []
    assert tree_contains(dest, token) == ["leak.txt"]  # the grep finds what is there


def test_a_missing_or_refused_token_fails_with_the_fix(
    worker, unique_name, private_repo, servers, git_server_keys
):
    bare, _ = private_repo
    token = f"github_pat_{secrets.token_hex(20)}"
    https = HttpGitServer(bare.parent, token=token, keys=git_server_keys)
    servers.append(https)
    app, _ = app_services.app_create(
        name=unique_name("notoken"), repo_url=https.url(bare), branch="main"
    )

    missing = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert missing.status == Deploy.Status.FAILED
    assert "asked for a login and this app has no HTTPS token" in missing.error
    assert f"python manage.py set_repo_token {app.name}" in missing.error

    wrong = f"github_pat_{secrets.token_hex(20)}"
    repo_access.repo_token_set(app=app, token=wrong)
    refused = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert refused.status == Deploy.Status.FAILED
    assert "refused the app's HTTPS token" in refused.error
    assert wrong not in refused.error and wrong not in _log(refused)
