"""The pipeline clones with the app's own credentials, decrypted once per run, and the deploy
log redacts them like secrets (issue 12). git is patched: this is about what it is given."""

from __future__ import annotations

from unittest.mock import patch

import pytest

from deployments import logstream, pipeline
from deployments.boundaries import git
from secrets_vault import crypto, repo_access
from secrets_vault import services as vault
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db

TOKEN = "github_pat_0123456789abcdefghijklmnopqrstuv"
SHA = "a" * 40


@pytest.fixture(autouse=True)
def _no_relay(monkeypatch):
    monkeypatch.setattr(logstream, "_send", lambda deploy_id, message: None)


@patch("deployments.boundaries.git.clone_at", autospec=True, return_value=SHA)
@patch("deployments.boundaries.git.resolve", autospec=True, return_value=SHA)
def test_the_clone_gets_the_apps_credentials_and_the_log_redacts_them(resolve, clone_at):
    app = AppFactory(name="shop")
    repo_access.deploy_key_make(app=app)
    repo_access.repo_token_set(app=app, token=TOKEN)
    deploy = DeployFactory(app=app, commit="")
    run = pipeline._Pipeline(deploy)
    run._stage = lambda name, status: None  # the status machinery is tested elsewhere
    with patch.object(crypto, "decrypt", wraps=crypto.decrypt) as decrypt:
        run._clone()
    assert decrypt.call_count == 2  # the key and the token, once

    auth = resolve.call_args.kwargs["auth"]
    assert clone_at.call_args.kwargs["auth"] is auth
    assert isinstance(auth, git.GitAuth) and auth.token == TOKEN and auth.app == "shop"
    assert "PRIVATE KEY" in auth.ssh_key
    key_line = auth.ssh_key.splitlines()[1]

    run.log(f"remote: token {TOKEN} and key {key_line}")
    vault.secret_set(app=app, key="API", value="secret-value-1")
    run._read_secrets([])  # the secrets' redactor keeps the credentials too
    run.log(f"again {TOKEN} {key_line} secret-value-1")
    assert deploy.log_text.splitlines()[-2:] == [
        "remote: token **** and key ****",
        "again **** **** ****",
    ]
    assert TOKEN not in deploy.log_text


@patch("deployments.boundaries.git.clone_at", autospec=True, return_value=SHA)
@patch("deployments.boundaries.git.resolve", autospec=True, return_value=SHA)
def test_a_public_repository_is_cloned_with_no_credentials(resolve, clone_at):
    app = AppFactory(name="shop")
    run = pipeline._Pipeline(DeployFactory(app=app, commit=""))
    run._stage = lambda name, status: None
    run._clone()
    auth = clone_at.call_args.kwargs["auth"]
    assert (auth.ssh_key, auth.token, auth.app) == ("", "", "shop")
