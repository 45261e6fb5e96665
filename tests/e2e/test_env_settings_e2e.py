"""Plain env vars and the settings page's delete, against the real worker, engine, Swarm,
registry and Traefik (SPEC §6 set_env/unset_env, issue 15): the app's env vars reach the
running container merged over the manifest's `env`, a redeploy applies a change without a
build, an unset one is gone; deleting from the dashboard, with the typed name, tears the app
down like delete_app."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps import services as app_services
from apps.models import App
from deployments import services
from deployments.boundaries import engine
from deployments.models import Deploy
from tests.e2e.conftest import via_traefik, wait_deploy, wait_for
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MANIFEST = """\
version: 1
env:
  GREETING: from-manifest
run:
  port: 8000
"""


def _files(base: str) -> dict[str, str]:
    """busybox httpd whose page is its container's GREETING and EXTRA, written at start."""
    dockerfile = (
        f"FROM {base}\n"
        "RUN mkdir -p /www\n"
        'CMD ["sh", "-c", "echo \\"GREETING=$GREETING EXTRA=$EXTRA\\" > /www/index.html; '
        'exec httpd -f -p 8000 -h /www"]\n'
    )
    return {"Dockerfile": dockerfile, ".paas/app.yaml": MANIFEST}


def _serves(host: str, text: str) -> None:
    wait_for(lambda: via_traefik(host) == (200, f"{text}\n"), 60, f"{host} to serve {text!r}")


def _command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_env_vars_reach_the_container_and_the_dashboard_deletes_the_app(
    worker, cluster_ready, unique_name, make_repo, client
):
    name = unique_name("envs")
    host = f"{name}.koyra.test"
    repo = make_repo()
    repo.commit(_files(cluster_ready["base"]))
    app, _ = app_services.app_create(name=name, repo_url=repo.url, domains=[host])
    _command("set_env", name, "GREETING=from-settings", "EXTRA=one")

    build = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert build.status == Deploy.Status.LIVE, build.error
    _serves(host, "GREETING=from-settings EXTRA=one")  # the app's value wins over the manifest's

    _command("unset_env", name, "GREETING")
    _command("set_env", name, "EXTRA=two words")
    redeploy = wait_deploy(services.redeploy_create(app=app))
    assert redeploy.status == Deploy.Status.LIVE, redeploy.error
    assert redeploy.image_id == build.image_id  # no build: the same image, new config
    _serves(host, "GREETING=from-manifest EXTRA=two words")

    _command("unset_env", name, "EXTRA")
    redeploy = wait_deploy(services.redeploy_create(app=app))
    assert redeploy.status == Deploy.Status.LIVE, redeploy.error
    _serves(host, "GREETING=from-manifest EXTRA=")

    client.force_login(UserFactory(username=f"{name}-admin", is_superuser=True))
    page = client.get(f"/apps/{name}/delete/").content.decode()
    assert f"remove service {name}_web" in page and f"stop routing {host}" in page
    assert client.post(f"/apps/{name}/delete/", {"confirm": name.upper()}).status_code == 400
    assert engine.service_get(f"{name}_web") is not None  # a wrong name removes nothing

    resp = client.post(f"/apps/{name}/delete/", {"confirm": name})
    assert resp.status_code == 302 and resp["Location"] == "/apps/"
    assert not App.objects.filter(name=name).exists()
    assert engine.service_get(f"{name}_web") is None
    wait_for(lambda: via_traefik(host)[0] == 404, 30, "traefik to stop routing the domain")
