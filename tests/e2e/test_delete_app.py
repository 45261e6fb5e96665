"""`delete_app` (SPEC §6) against the real worker, engine, Swarm, registry and Traefik: without
--yes nothing changes; with --yes the service, its Swarm secrets and its registry tags are
gone, Traefik stops routing its domain, and the name can be created again."""

from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from apps import services as app_services
from apps.models import App
from deployments import services
from deployments.boundaries import engine, registry
from deployments.models import Deploy
from secrets_vault import services as vault
from tests.e2e.conftest import httpd_app, via_traefik, wait_deploy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MANIFEST = """\
version: 1
secrets: [API_TOKEN]
run:
  port: 8000
"""


def _run(*args) -> str:
    out = StringIO()
    call_command("delete_app", *args, stdout=out)
    return out.getvalue()


def test_delete_app_tears_down_what_the_app_runs(worker, cluster_ready, unique_name, make_repo):
    name = unique_name("del")
    host = f"{name}.koyra.test"
    repo = make_repo()
    sha = repo.commit(httpd_app(cluster_ready["base"], "doomed", manifest=MANIFEST))
    app, _ = app_services.app_create(name=name, repo_url=repo.url, domains=[host])
    vault.secret_set(app=app, key="API_TOKEN", value="delete-me-e2e")
    deploy = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert deploy.status == Deploy.Status.LIVE, deploy.error
    wait_for(lambda: via_traefik(host) == (200, "doomed\n"), 30, "traefik routing")
    assert engine.secrets_list(f"koyra.app={name}")
    tag = deploy.image.ref.rsplit(":", 1)[-1]
    assert tag.startswith(f"{sha}-")  # the commit, and random bits no one else can guess
    assert registry.tags(name) == [tag]

    out = _run(name)
    assert f"would remove service {name}_web" in out
    assert f"would stop routing {host}" in out
    assert "would remove Swarm secret" in out and "(API_TOKEN)" in out
    assert f"would delete registry image {name}@" in out
    assert "delete-me-e2e" not in out
    assert App.objects.filter(name=name).exists()
    assert engine.service_get(f"{name}_web") is not None
    assert via_traefik(host) == (200, "doomed\n")
    tag = deploy.image.ref.rsplit(":", 1)[-1]
    assert tag.startswith(f"{sha}-")  # the commit, and random bits no one else can guess
    assert registry.tags(name) == [tag]

    out = _run(name, "--yes")
    assert f"deleted the app {name}" in out
    assert not App.objects.filter(name=name).exists()
    assert not Deploy.objects.filter(pk=deploy.pk).exists()
    assert engine.service_get(f"{name}_web") is None
    assert engine.secrets_list(f"koyra.app={name}") == []
    assert registry.tags(name) == []
    assert registry.manifest_digest(name, tag) is None
    with pytest.raises(engine.EngineError):  # the local tag is gone too
        engine.image_inspect(f"{settings.KOYRA_REGISTRY}/{name}:{tag}")
    wait_for(lambda: via_traefik(host)[0] == 404, 30, "traefik to stop routing the domain")

    again, _ = app_services.app_create(name=name, repo_url=repo.url, domains=[host])
    assert again.pk != app.pk
