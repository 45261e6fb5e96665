"""The harness itself, end to end: bootstrap_cluster, then a hand-made service with Koyra's
labels is reachable through koyra-traefik for its Host and nowhere else."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command

from deployments import cluster
from deployments.boundaries import engine
from tests.e2e.conftest import via_traefik, wait_for

pytestmark = pytest.mark.e2e


def _converged(name: str) -> bool:
    """Every task Swarm wants running is running (none stuck pending)."""
    wanted = [t for t in engine.service_tasks(name) if t["DesiredState"] == "running"]
    return bool(wanted) and all(t["Status"]["State"] == "running" for t in wanted)


def test_a_changed_setting_updates_traefik_in_place(cluster_ready, settings):
    """Traefik and the registry hold host-mode ports: an update must stop the old task first
    (start-first would leave the new one pending forever)."""
    settings.KOYRA_TRAEFIK_REFRESH_SECONDS = settings.KOYRA_TRAEFIK_REFRESH_SECONDS + 1
    try:
        assert cluster.cluster_bootstrap(say=lambda s: None)
        wait_for(lambda: _converged(cluster.TRAEFIK_SERVICE), 60, "Traefik to converge")
    finally:
        settings.KOYRA_TRAEFIK_REFRESH_SECONDS -= 1
        assert cluster.cluster_bootstrap(say=lambda s: None)
    wait_for(lambda: _converged(cluster.TRAEFIK_SERVICE), 60, "Traefik to converge back")
    wait_for(lambda: via_traefik("nothing.koyra.test")[0] == 404, 30, "Traefik to answer")


def test_bootstrap_is_idempotent(cluster_ready, capsys):
    call_command("bootstrap_cluster")
    out = capsys.readouterr().out
    assert "network koyra-public: exists" in out
    assert "koyra-registry" in out and "unchanged" in out
    assert "koyra-traefik" in out
    assert "created" not in out and "updated" not in out
    registry = engine.service_get(cluster.REGISTRY_SERVICE)
    assert registry["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith(
        settings.KOYRA_REGISTRY_IMAGE
    )


def test_a_labelled_service_answers_through_traefik_for_its_host_only(
    cluster_ready, unique_name, probe
):
    name = unique_name("harness")
    host = f"{name}.koyra.test"
    spec = engine.ServiceSpec(
        name=f"{name}_web",
        image=cluster_ready["base"],
        command=[
            "sh",
            "-c",
            f"mkdir -p /www && echo hello-{name} > /www/index.html && "
            "exec httpd -f -p 8000 -h /www",
        ],
        labels={
            "koyra.app": name,
            "traefik.enable": "true",
            f"traefik.http.routers.{name}.rule": f"Host(`{host}`)",
            f"traefik.http.routers.{name}.entrypoints": "web",
            f"traefik.http.services.{name}.loadbalancer.server.port": "8000",
            "traefik.swarm.network": settings.KOYRA_NETWORK,
        },
        networks=[settings.KOYRA_NETWORK],
    )
    assert engine.service_apply(spec) == "created"
    _, body = wait_for(
        lambda: (r := via_traefik(host))[0] == 200 and r, 60, "Traefik to route the host"
    )
    assert body.strip() == f"hello-{name}"
    assert via_traefik(f"other-{name}.koyra.test")[0] == 404
    assert f"hello-{name}" in probe.get(f"tasks.{name}_web", 8000)


def test_an_image_that_cannot_be_had_is_named_and_the_rest_still_works(cluster_ready, settings):
    settings.KOYRA_TRAEFIK_IMAGE = "koyra-missing/traefik:none"
    said: list[str] = []
    assert cluster.cluster_bootstrap(say=said.append) is False
    text = "\n".join(said)
    assert "traefik: skipped" in text and "koyra-missing/traefik:none" in text
    assert "KOYRA_TRAEFIK_IMAGE" in text
    assert "registry (koyra-registry" in text
    # The running Traefik was left as it was.
    traefik = engine.service_get(cluster.TRAEFIK_SERVICE)
    image = traefik["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image.startswith(cluster_ready["traefik"])
