"""The management commands of SPEC §6 against the real worker and engine."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.models import App
from deployments.models import Deploy
from tests.e2e.conftest import httpd_app, via_traefik

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_deploy_wait_follows_the_log_and_list_deploys_reports_it(
    worker, cluster_ready, unique_name, make_repo
):
    name = unique_name("cmd")
    repo = make_repo()
    sha = repo.commit(httpd_app(cluster_ready["base"], "hello"))
    created = json.loads(_run("create_app", name, "--repo", repo.url, "--json"))
    assert created["name"] == name

    out = _run("deploy", name, "--wait")
    assert "==> build" in out and "Successfully built" in out
    assert out.strip().endswith("live")

    assert "nothing to cancel" in _run("cancel", name)
    # A domain added to the app since: a redeploy applies it (current config, same image).
    App.objects.filter(name=name).update(domains=[f"{name}.koyra.test"])
    out = _run("redeploy", name, "--wait")
    assert "no build" in out and "Step 1/" not in out
    assert out.strip().endswith("live")
    assert via_traefik(f"{name}.koyra.test") == (200, "hello\n")

    rows = json.loads(_run("list_deploys", name, "--json"))
    assert [r["status"] for r in rows] == ["live", "retired"]
    assert [r["trigger"] for r in rows] == ["redeploy", "manual"]
    assert rows[0]["commit"] == rows[1]["commit"] == sha
    assert rows[0]["image"] == rows[1]["image"]
    assert "@sha256:" in rows[0]["image"]
    table = _run("list_deploys", name)
    assert table.splitlines()[0].split()[1] == "live"

    with pytest.raises(CommandError, match="no earlier live release"):
        _run("rollback", name)


def test_deploy_wait_exits_non_zero_when_the_deploy_fails(
    worker, cluster_ready, unique_name, make_repo
):
    name = unique_name("cmdfail")
    repo = make_repo()
    repo.commit({"Dockerfile": f"FROM {cluster_ready['base']}\nRUN exit 9\n"})
    _run("create_app", name, "--repo", repo.url)
    with pytest.raises(CommandError, match="ended failed"):
        _run("deploy", name, "--wait")
    assert Deploy.objects.get(app__name=name).status == Deploy.Status.FAILED
    with pytest.raises(CommandError, match="40"):
        _run("deploy", name, "--commit", "HEAD")
    with pytest.raises(CommandError, match="No app named"):
        _run("deploy", "nope-nope")
