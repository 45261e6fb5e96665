from __future__ import annotations

from unittest.mock import patch

import pytest
from django.core.exceptions import ValidationError

from deployments import logstream, pipeline
from secrets_vault import crypto
from secrets_vault import services as vault
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db

OLD, NEW = "old-value-1111aaaa", "new-value-2222bbbb"


@pytest.fixture(autouse=True)
def _no_relay(monkeypatch):
    monkeypatch.setattr(logstream, "_send", lambda deploy_id, message: None)


@patch("deployments.boundaries.engine.secret_ensure", autospec=True, return_value="secret-id")
def test_a_deploy_applies_the_values_it_read_at_its_start_and_redacts_them(secret_ensure):
    app = AppFactory()
    vault.secret_set(app=app, key="API_TOKEN", value=OLD)
    deploy = DeployFactory(app=app)
    run = pipeline._Pipeline(deploy)
    run._read_secrets(["API_TOKEN"])

    vault.secret_set(app=app, key="API_TOKEN", value=NEW)  # while the image builds
    refs = run._secret_refs(["API_TOKEN"])
    run.log(f"[task 1234] API_TOKEN={OLD}")

    assert deploy.log_text == "[task 1234] API_TOKEN=****"
    assert [(r.key, r.file, r.id) for r in refs] == [("API_TOKEN", "koyra-API_TOKEN", "secret-id")]
    # One snapshot per deploy: the value set meanwhile applies to the next deploy or redeploy.
    name, value, labels = secret_ensure.call_args.args
    assert value == OLD and OLD not in name and OLD not in str(labels)


def test_every_secret_of_the_app_is_redacted_not_only_the_manifest_ones():
    app = AppFactory()
    vault.secret_set(app=app, key="API_TOKEN", value=OLD)
    vault.secret_set(app=app, key="UNLISTED", value=NEW)
    deploy = DeployFactory(app=app)
    run = pipeline._Pipeline(deploy)
    run._read_secrets(["API_TOKEN"])
    run.log(f"{OLD} {NEW}")
    assert deploy.log_text == "**** ****"


@patch("deployments.boundaries.engine.secret_ensure", autospec=True, return_value="secret-id")
def test_secrets_are_decrypted_once_per_deploy_run(secret_ensure):
    """The release job, the rollout and the undo of a failed rollout all mount secrets: each
    value is decrypted once, at the start, however many of them run."""
    app = AppFactory()
    for key in ("A", "B", "C"):
        vault.secret_set(app=app, key=key, value=f"value-of-{key}")
    run = pipeline._Pipeline(DeployFactory(app=app))
    with patch.object(crypto, "decrypt", wraps=crypto.decrypt) as decrypt:
        run._read_secrets(["A", "B"])
        for _ in range(3):  # release, rollout, undo
            run._secret_refs(["A", "B"])
    assert decrypt.call_count == 3  # A, B and C once each (C: for the redaction)
    assert secret_ensure.call_count == 6


def test_a_secret_the_release_names_but_that_has_no_value_fails_before_anything_runs():
    app = AppFactory(name="shop")
    vault.secret_set(app=app, key="A", value="one")
    run = pipeline._Pipeline(DeployFactory(app=app))
    where = (
        r"on the app's page under Secrets \(/apps/shop/#secrets\), or with: .*set_secret shop KEY"
    )
    with pytest.raises(ValidationError, match=rf"no value set: MISSING\. Set each {where}"):
        run._read_secrets(["A", "MISSING"])
