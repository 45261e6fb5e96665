"""The app's plain env vars (set_env) in a release: merged over the manifest's `env` by a
build, re-read by a redeploy or rollback (today's values, as with secrets), build args only
when public-prefixed, and never under a name the manifest keeps secret. Only the engine
boundary is patched."""

from __future__ import annotations

import pytest

from apps import services as app_services
from deployments import logstream, pipeline, swarm_spec
from deployments import manifest as manifest_mod
from deployments.boundaries import engine
from deployments.models import Deploy
from deployments.release_spec import ReleaseSpec
from secrets_vault import services as vault
from tests.factories import AppFactory, DeployFactory, ImageFactory

pytestmark = pytest.mark.django_db

MANIFEST = """\
version: 1
build:
  args: {FLAVOR: prod}
env:
  LOG_LEVEL: info
  REGION: eu
  NEXT_PUBLIC_API: https://api.example.com
secrets: [API_TOKEN]
"""


@pytest.fixture(autouse=True)
def _no_relay(monkeypatch):
    monkeypatch.setattr(logstream, "_send", lambda deploy_id, message: None)


@pytest.fixture
def image_engine(monkeypatch):
    monkeypatch.setattr(engine, "image_command", lambda ref: ([], ["httpd"]))
    monkeypatch.setattr(engine, "image_has", lambda ref, path: True)


def test_a_build_merges_the_apps_env_over_the_manifests(image_engine):
    app = AppFactory(env={"LOG_LEVEL": "debug", "FEATURE_X": "on"})
    run = pipeline._Pipeline(DeployFactory(app=app))
    m = manifest_mod.parse(MANIFEST)
    spec = run._release_spec(m, ImageFactory(app=app))
    assert spec.env == {
        "LOG_LEVEL": "debug",
        "REGION": "eu",
        "NEXT_PUBLIC_API": "https://api.example.com",
        "FEATURE_X": "on",
    }
    assert spec.manifest_env == m.env
    svc = swarm_spec.service_spec(app=app, deploy_id=1, spec=spec, secret_refs=[])
    assert svc.env == spec.env  # what the service (and the release job) runs with


def test_only_public_prefixed_env_reaches_the_build_the_apps_included():
    m = manifest_mod.parse(MANIFEST)
    env = {**m.env, "VITE_FLAG": "1", "DATABASE_HOST": "db", "NEXT_PUBLIC_API": "https://b"}
    assert m.build_args(env) == {
        "NEXT_PUBLIC_API": "https://b",
        "VITE_FLAG": "1",
        "FLAVOR": "prod",
    }
    assert m.build_args() == {"NEXT_PUBLIC_API": "https://api.example.com", "FLAVOR": "prod"}


def _live(app, env: dict[str, str]) -> Deploy:
    spec = ReleaseSpec(
        image="127.0.0.1:5000/x@sha256:" + "b" * 64,
        env={**env, "FROM_APP_THEN": "1"},
        manifest_env=env,
    )
    return DeployFactory.create(
        app=app, status=Deploy.Status.LIVE, image=ImageFactory(app=app), spec=spec.to_json()
    )


@pytest.mark.parametrize("trigger", ["redeploy", "rollback"])
def test_a_redeploy_or_rollback_applies_the_apps_env_as_it_is_now(trigger):
    app = AppFactory(env={"LOG_LEVEL": "debug"})
    source = _live(app, {"LOG_LEVEL": "info", "REGION": "eu"})
    app_services.app_env_set(app=app, values={"NEW": "yes"})
    app.refresh_from_db()
    deploy = DeployFactory(app=app, trigger=trigger, source=source)
    spec = pipeline._Pipeline(deploy)._reuse()
    # FROM_APP_THEN was the app's when the release was built; it is unset now, so it is gone.
    assert spec.env == {"LOG_LEVEL": "debug", "REGION": "eu", "NEW": "yes"}
    app_services.app_env_unset(app=app, keys=["LOG_LEVEL"])
    deploy = Deploy.objects.select_related("app").get(
        pk=DeployFactory(app=app, trigger=trigger, source=source).pk
    )
    assert pipeline._Pipeline(deploy)._reuse().env == {
        "LOG_LEVEL": "info",  # the manifest's value again
        "REGION": "eu",
        "NEW": "yes",
    }


def test_a_release_recorded_before_app_env_existed_redeploys_with_its_env():
    row = ReleaseSpec(image="r@sha256:" + "c" * 64, env={"A": "1"}).to_json()
    del row["manifest_env"]
    assert ReleaseSpec.from_json(row).with_env({}).env == {"A": "1"}


def test_a_name_both_plain_and_secret_in_the_manifest_fails_the_deploy_naming_the_fix():
    app = AppFactory(name="shop", env={"API_TOKEN": "plain"})
    vault.secret_set(app=app, key="API_TOKEN", value="secret-value-1")
    run = pipeline._Pipeline(DeployFactory(app=app))
    with pytest.raises(pipeline.DeployFailed, match=r"unset_env shop API_TOKEN"):
        run._app_env(["API_TOKEN"])
    run._app_env(["OTHER"])  # no clash: fine, and the names are logged
    assert "app env vars (over the manifest's env): API_TOKEN" in run.deploy.log_text
