from __future__ import annotations

from unittest.mock import patch

import pytest

from deployments import live, services
from secrets_vault import services as vault
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db

OLD, NEW = "old-value-1111aaaa", "new-value-2222bbbb"


@pytest.fixture(autouse=True)
def _no_relay(monkeypatch):
    monkeypatch.setattr(live, "_send", lambda deploy_id, message: None)


@patch("deployments.engine.secret_ensure", autospec=True, return_value="secret-id")
def test_a_value_set_during_the_deploy_is_redacted_from_later_lines(secret_ensure):
    app = AppFactory()
    vault.secret_set(app=app, key="API_TOKEN", value=OLD)
    deploy = DeployFactory(app=app)
    pipeline = services._Pipeline(deploy)
    pipeline._check_secrets(["API_TOKEN"])

    vault.secret_set(app=app, key="API_TOKEN", value=NEW)  # while the image builds
    refs = pipeline._swarm_secrets(["API_TOKEN"])
    pipeline.log(f"[task 1234] API_TOKEN={NEW} (was {OLD})")

    assert deploy.log_text == "[task 1234] API_TOKEN=**** (was ****)"
    assert [(r["key"], r["file"], r["id"]) for r in refs] == [
        ("API_TOKEN", "koyra-API_TOKEN", "secret-id")
    ]
    name, value, labels = secret_ensure.call_args.args
    assert value == NEW and NEW not in name and NEW not in str(labels)


def test_every_secret_of_the_app_is_redacted_not_only_the_manifest_ones():
    app = AppFactory()
    vault.secret_set(app=app, key="API_TOKEN", value=OLD)
    vault.secret_set(app=app, key="UNLISTED", value=NEW)
    deploy = DeployFactory(app=app)
    pipeline = services._Pipeline(deploy)
    pipeline._check_secrets(["API_TOKEN"])
    pipeline.log(f"{OLD} {NEW}")
    assert deploy.log_text == "**** ****"
