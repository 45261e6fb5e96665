"""`list_apps` against the real engine: replicas healthy/total from Swarm, and an app whose
latest deploy failed still reads as served by its live release."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from apps import services as app_services
from deployments import services
from deployments.models import Deploy
from tests.e2e.conftest import httpd_app, wait_deploy

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _rows() -> dict[str, dict]:
    out = StringIO()
    call_command("list_apps", "--json", stdout=out)
    return {row["name"]: row for row in json.loads(out.getvalue())}


def test_list_apps_shows_the_live_release_and_swarm_replicas(
    worker, cluster_ready, unique_name, make_repo
):
    name = unique_name("ls")
    repo = make_repo()
    manifest = "run:\n  replicas: 2\n  domains: [{host}]\n".format(host=f"{name}.koyra.test")
    repo.commit(httpd_app(cluster_ready["base"], "v1", manifest=manifest), "v1")
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    d1 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d1.status == Deploy.Status.LIVE, d1.log_text

    row = _rows()[name]
    assert row["serving"]["deploy"] == d1.pk and row["serving"]["commit"] == d1.commit
    assert row["replicas"] == {"healthy": 2, "total": 2}
    assert row["domains"] == [f"{name}.koyra.test"]

    # A deploy that fails before the build (a secret the manifest needs is not set) leaves
    # the live release serving: the list says so, next to the failed status.
    repo.commit({".paas/app.yaml": manifest + "secrets: [API_TOKEN]\n"}, "v2")
    d2 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d2.status == Deploy.Status.FAILED, d2.log_text
    row = _rows()[name]
    assert row["latest_deploy"] == {"id": d2.pk, "status": "failed"}
    assert row["state"] == "serving"
    assert row["serving"]["deploy"] == d1.pk
    assert row["replicas"] == {"healthy": 2, "total": 2}
