"""What the short stability window (KOYRA_ROLLOUT_STABILITY_SECONDS, Swarm's monitor) still
catches, against the real Swarm: a task that crashes soon after it became healthy, and a task
whose healthcheck fails only after the window (swarm_spec.monitor_seconds, rollout.py)."""

from __future__ import annotations

import re
import time

import pytest
from django.conf import settings

from apps import services as app_services
from deployments import services
from deployments.boundaries import engine
from deployments.models import Deploy
from tests.e2e.conftest import httpd_app, via_traefik, wait_deploy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MANIFEST = """\
run:
  healthcheck: {hc}
  domains: [{host}]
"""
QUICK = "{path: /index.html, interval: 1, timeout: 1, retries: 2, start_period: 0}"
# The probe leaves a mark the app waits for: it crashes 2 s after its first healthy probe,
# however slowly the loaded machine starts it.
PROBE_THEN_CRASH = (
    '{cmd: "wget -q -O /dev/null http://127.0.0.1:8000/index.html && touch /tmp/probed", '
    "interval: 1, timeout: 1, retries: 2, start_period: 0}"
)
START = """\
httpd -p 8000 -h /www
until [ -f /tmp/probed ]; do sleep 0.2; done
sleep 2
echo "koyra-test: crashing 2 s after the first healthy probe"
exit 1
"""
# Unhealthy only after 4 failed probes 2 s apart: well after a 5 s window.
SLOW_UNHEALTHY = "{path: /missing.html, interval: 2, timeout: 1, retries: 4, start_period: 0}"


def _assert_v1_serving(app, d1, host, failed):
    d1.refresh_from_db()
    assert d1.status == Deploy.Status.LIVE
    tasks = engine.service_tasks(app.service_name)
    running = [t for t in tasks if t["DesiredState"] == "running"]
    why = (failed.log_text, [(t["DesiredState"], t["Status"]) for t in tasks])
    assert {t["Spec"]["ContainerSpec"]["Image"] for t in running} == {d1.image.pinned}, why
    assert via_traefik(host) == (200, "v1\n")


def test_a_new_version_that_crashes_after_going_healthy_or_turns_unhealthy_late_is_rolled_back(
    worker, cluster_ready, unique_name, make_repo
):
    assert settings.KOYRA_ROLLOUT_STABILITY_SECONDS == 5
    name = unique_name("roll")
    host = f"{name}.koyra.test"
    repo = make_repo()
    base = cluster_ready["base"]
    repo.commit(httpd_app(base, "v1", manifest=MANIFEST.format(hc=QUICK, host=host)), "v1")
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    d1 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d1.status == Deploy.Status.LIVE, d1.log_text
    wait_for(lambda: via_traefik(host) == (200, "v1\n"), 30, "v1 through Traefik")

    crashing = {
        "Dockerfile": (
            f"FROM {base}\nRUN mkdir -p /www\nCOPY index.html /www/index.html\n"
            'COPY start.sh /start.sh\nCMD ["/bin/sh", "/start.sh"]\n'
        ),
        "start.sh": START,
        "index.html": "v2\n",
        ".paas/app.yaml": MANIFEST.format(hc=PROBE_THEN_CRASH, host=host),
    }
    repo.commit(crashing, "v2 crashes 2 s after it is healthy")
    d2 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d2.status == Deploy.Status.FAILED, d2.log_text
    # It was healthy first: the app only says so after a successful probe.
    assert "crashing 2 s after the first healthy probe" in d2.log_text
    _assert_v1_serving(app, d1, host, d2)
    assert d2.error.startswith("rollout failed: "), d2.error
    assert "non-zero exit (1)" in d2.error, d2.error  # the crash, not the probe it cut short
    assert d2.error.endswith("; the previous version keeps serving"), d2.error

    files = httpd_app(base, "v3", manifest=MANIFEST.format(hc=SLOW_UNHEALTHY, host=host))
    repo.commit({**files, "start.sh": None}, "v3 turns unhealthy after the window")
    d3 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d3.status == Deploy.Status.FAILED, d3.log_text
    assert d3.error.startswith("rollout failed: "), d3.error
    assert d3.error.endswith("; the previous version keeps serving"), d3.error
    _assert_v1_serving(app, d1, host, d3)


CONSTRAINED = """\
run:
  healthcheck: {hc}
  domains: [{host}]
  constraints: [{where}]
"""


def test_a_release_runs_where_its_constraints_say_and_one_no_node_meets_fails_in_swarms_words(
    worker, cluster_ready, unique_name, make_repo
):
    name = unique_name("place")
    host = f"{name}.koyra.test"
    repo = make_repo()
    base = cluster_ready["base"]
    manifest = CONSTRAINED.format(hc=QUICK, host=host, where='"node.role == manager"')
    repo.commit(httpd_app(base, "v1", manifest=manifest), "v1 on managers")
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    d1 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d1.status == Deploy.Status.LIVE, d1.log_text
    placement = engine.service_get(app.service_name)["Spec"]["TaskTemplate"]["Placement"]
    assert placement["Constraints"] == ["node.role==manager"]
    wait_for(lambda: via_traefik(host) == (200, "v1\n"), 30, "v1 through Traefik")

    nowhere = CONSTRAINED.format(hc=QUICK, host=host, where='"node.labels.koyra-nowhere==yes"')
    repo.commit(httpd_app(base, "v2", manifest=nowhere), "v2 on no node")
    started = time.monotonic()
    d2 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d2.status == Deploy.Status.FAILED, d2.log_text
    # Swarm's own words, in the log at once and in the error; well before the rollout timeout.
    assert re.search(r"swarm: task \w+: pending no suitable node", d2.log_text), d2.log_text
    assert "Swarm cannot place the new version: no suitable node" in d2.error, d2.error
    assert d2.error.endswith("; the previous version keeps serving"), d2.error
    assert time.monotonic() - started < settings.KOYRA_ROLLOUT_TIMEOUT / 2
    _assert_v1_serving(app, d1, host, d2)
    placement = engine.service_get(app.service_name)["Spec"]["TaskTemplate"]["Placement"]
    assert placement["Constraints"] == ["node.role==manager"]
