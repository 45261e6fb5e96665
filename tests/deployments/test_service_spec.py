"""The Swarm service Koyra asks for (SPEC §5): labels, network, update policy, wrapper."""

from __future__ import annotations

import pytest

from deployments import pipeline, swarm_spec
from deployments.release_spec import ReleaseSpec
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db

SPEC = {
    "image": "127.0.0.1:5000/shop@sha256:" + "a" * 64,
    "entrypoint": ["docker-entrypoint.sh"],
    "cmd": ["node", "server.js"],
    "env": {"LOG_LEVEL": "info"},
    "secrets": ["DATABASE_URL"],
    "predeploy": ["npm run migrate"],
    "port": 3000,
    "replicas": 2,
    "healthcheck": {
        "path": "/healthz",
        "interval": 3,
        "timeout": 3,
        "retries": 3,
        "start_period": 10,
    },
    "domains": ["shop.example.com", "www.shop.example.com"],
    "memory": 512 * 1024**2,
    "nano_cpus": 500_000_000,
    "shell": True,
}
REF = swarm_spec.SecretRef(
    id="sid", name="koyra-shop-abc", file="koyra-DATABASE_URL", key="DATABASE_URL"
)


def _spec(**over):
    app = AppFactory(name="shop")
    deploy = DeployFactory(app=app)
    return deploy, swarm_spec.service_spec(
        app=app,
        deploy_id=deploy.pk,
        spec=ReleaseSpec.from_json({**SPEC, **over}),
        secret_refs=[REF],
    )


def test_it_names_and_labels_the_service_per_spec():
    deploy, s = _spec()
    assert s.name == "shop_web"
    assert s.image == SPEC["image"]
    assert s.labels["koyra.app"] == "shop"
    assert s.labels["koyra.deploy"] == str(deploy.pk)
    assert s.labels["com.docker.stack.namespace"] == "shop"
    assert s.labels["traefik.enable"] == "true"
    assert s.labels["traefik.http.routers.shop.rule"] == (
        "Host(`shop.example.com`) || Host(`www.shop.example.com`)"
    )
    assert s.labels["traefik.http.routers.shop.entrypoints"] == "web"
    assert s.labels["traefik.http.services.shop.loadbalancer.server.port"] == "3000"
    assert s.labels["traefik.swarm.network"] == "koyra-public"
    assert s.networks == ["koyra-public"]
    assert (s.replicas, s.memory, s.nano_cpus) == (2, 512 * 1024**2, 500_000_000)
    # Swarm's monitor is the stability window, not the healthcheck (10 + 6 * 4 s here): a task
    # that never becomes healthy fails the update whatever the window (tests/e2e/test_rollout).
    assert s.monitor == 5


def test_the_stability_window_is_a_setting(settings):
    settings.KOYRA_ROLLOUT_STABILITY_SECONDS = 12
    _, s = _spec()
    assert s.monitor == 12


def test_with_acme_the_router_uses_websecure_and_the_resolver(settings):
    settings.KOYRA_ACME_EMAIL = "ops@example.com"
    _, s = _spec()
    assert s.labels["traefik.http.routers.shop.entrypoints"] == "websecure"
    assert s.labels["traefik.http.routers.shop.tls.certresolver"] == "le"


def test_an_app_without_domains_gets_no_router():
    _, s = _spec(domains=[])
    assert not any(k.startswith("traefik.") for k in s.labels)


def test_the_wrapper_runs_predeploy_then_the_images_own_command():
    _, s = _spec()
    assert s.command[:2] == ["/bin/sh", "-c"]
    assert s.args == ["koyra-start", "docker-entrypoint.sh", "node", "server.js"]
    script = s.command[2]
    assert script.index("DATABASE_URL=") < script.index("npm run migrate") < script.index('"$@"')
    assert "/run/secrets/koyra-DATABASE_URL" in script
    assert s.secrets == [{"id": "sid", "name": "koyra-shop-abc", "file": "koyra-DATABASE_URL"}]
    assert "DATABASE_URL" not in s.env  # a secret never becomes plain service env


def test_the_healthcheck_path_becomes_an_http_probe_on_the_port():
    _, s = _spec()
    assert s.healthcheck["test"][0] == "CMD-SHELL"
    assert "http://127.0.0.1:3000/healthz" in s.healthcheck["test"][1]


def test_an_image_without_a_shell_is_not_wrapped():
    _, s = _spec(shell=False, predeploy=[])
    assert s.command is None and s.args is None


def test_a_host_another_app_serves_is_refused_before_the_rollout():
    from deployments.models import Deploy

    other = AppFactory(name="blog", domains=["blog.example.com"])
    DeployFactory(
        app=AppFactory(name="docs"),
        status=Deploy.Status.LIVE,
        spec={"domains": ["docs.example.com"]},
    )
    me = AppFactory(name="shop")
    pipeline._check_domains(me, ["shop.example.com"])
    for host, owner in (("blog.example.com", other.name), ("docs.example.com", "docs")):
        with pytest.raises(pipeline.DeployFailed, match=f"already routes to the app '{owner}'"):
            pipeline._check_domains(me, [host])
