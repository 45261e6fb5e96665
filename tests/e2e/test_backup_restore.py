"""The restore drill (issue 14): two apps live, `backup`, the database and the data directory
wiped, `bootstrap_cluster` and `restore` as on a fresh install, then each app rolls back and
redeploys, live through Traefik, its secret intact. Real worker, engine, Swarm, registry."""

from __future__ import annotations

import secrets
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from apps import services as app_services
from apps.models import App
from deployments import cluster, services
from deployments.boundaries import registry
from deployments.models import Deploy, Image
from secrets_vault import services as vault
from tests.e2e.conftest import httpd_app, via_traefik, wait_deploy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The secret must reach the restored app's containers with its value: a task whose predeploy
# step fails never becomes healthy, so the rollout would fail.
MANIFEST = """\
secrets: [GREETING]
predeploy:
  - test "$GREETING" = "{value}"
run:
  healthcheck: {{path: /index.html, interval: 1, timeout: 1, retries: 2, start_period: 0}}
  domains: [{host}]
"""


def _two_releases(name: str, repo, base: str) -> dict:
    host, value = f"{name}.koyra.test", f"hello-{secrets.token_hex(6)}"
    repo.commit(httpd_app(base, "v0", manifest=MANIFEST.format(value=value, host=host)))
    app, hook = app_services.app_create(name=name, repo_url=repo.url)
    vault.secret_set(app=app, key="GREETING", value=value)
    for text in ("v0", "v1"):
        if text != "v0":
            repo.commit({"index.html": f"{text}\n"}, text)
        d = wait_deploy(services.deploy_create(app=app, trigger="manual"))
        assert d.status == Deploy.Status.LIVE, d.log_text
    _serves(host, "v1")
    return {"name": name, "host": host, "value": value, "hook": hook}


def _serves(host: str, text: str) -> None:
    wait_for(lambda: via_traefik(host) == (200, f"{text}\n"), 30, f"{text} at {host}")


def _wipe_data_dir() -> None:
    """Everything Koyra keeps in KOYRA_DATA_DIR (the registry login, workspaces) goes; the
    test database's own files stay (the worker has them open), and so does dockerd's log."""
    keep = Path(connection.settings_dict["NAME"]).name
    for p in Path(settings.KOYRA_DATA_DIR).iterdir():
        if p.name.startswith(keep) or p.name == "dockerd.log":
            continue
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def test_a_restored_install_rolls_back_and_redeploys_both_apps(
    worker, cluster_ready, unique_name, make_repo, tmp_path
):
    apps = [_two_releases(unique_name("bk"), make_repo(), cluster_ready["base"]) for _ in "ab"]
    before = {m: m.objects.count() for m in (App, Deploy, Image)}
    path = tmp_path / "koyra-backup.tar.gz"
    out = StringIO()
    call_command("backup", str(path), stdout=out)
    assert "NOT in the backup" in out.getvalue()

    call_command("flush", interactive=False, verbosity=0)  # the test database only
    _wipe_data_dir()
    assert not App.objects.exists() and registry.credentials() is None
    assert cluster.cluster_bootstrap(say=lambda s: None)  # a new registry login, as a new install
    out = StringIO()
    call_command("restore", str(path), stdout=out)
    assert "not in this registry" not in out.getvalue()
    assert {m: m.objects.count() for m in (App, Deploy, Image)} == before
    assert not Image.objects.filter(deleted__isnull=False).exists()
    assert not registry.manifest_exists(apps[0]["name"], "sha256:" + "0" * 64)

    for a in apps:
        app = App.objects.get(name=a["name"])
        assert app_services.app_webhook_secret(app=app) == a["hook"]
        rolled = wait_deploy(services.rollback_create(app=app))
        assert rolled.status == Deploy.Status.LIVE, rolled.log_text
        _serves(a["host"], "v0")
        again = wait_deploy(services.redeploy_create(app=app))
        assert again.status == Deploy.Status.LIVE, again.log_text
        assert again.image_id == rolled.image_id
        _serves(a["host"], "v0")
