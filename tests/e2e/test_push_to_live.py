"""A commit to a healthy Swarm service, through the real worker, registry, Swarm and Traefik."""

from __future__ import annotations

import threading
import time

import pytest

from apps import services as app_services
from deployments import services
from deployments.boundaries import engine
from deployments.models import Deploy
from tests.e2e.conftest import httpd_app, via_traefik, wait_deploy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MANIFEST = """\
version: 1
run:
  port: 8000
  replicas: {replicas}
  healthcheck: {{path: /index.html, interval: 1, timeout: 1, retries: 2, start_period: 0}}
  domains: [{host}]
"""


def _app(name, repo, host=None):
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    return app


class Hammer:
    """Requests the app through Traefik without pause and counts what did not answer `ok`."""

    def __init__(self, host: str, ok: set[str]) -> None:
        self.host, self.ok = host, ok
        self.failures: list[str] = []
        self.bodies: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = via_traefik(self.host)
                body = body.strip()
                self.bodies.append(body)
                if status != 200 or body not in self.ok:
                    self.failures.append(f"{status} {body[:60]}")
            except OSError as exc:
                self.failures.append(repr(exc))
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_v1_then_v2_serves_through_traefik_with_no_failed_request(
    worker, cluster_ready, unique_name, make_repo, probe
):
    name = unique_name("live")
    host = f"{name}.koyra.test"
    repo = make_repo()
    manifest = MANIFEST.format(replicas=1, host=host)
    v1 = repo.commit(httpd_app(cluster_ready["base"], "v1", manifest=manifest), "v1")
    app = _app(name, repo)

    d1 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d1.status == Deploy.Status.LIVE, d1.log_text
    assert d1.commit == v1
    assert d1.image.digest.startswith("sha256:")
    assert d1.image.size > 0
    assert set(d1.stage_seconds()) == {"clone", "build", "push", "rollout"}
    assert "traefik: routing" in d1.log_text
    assert via_traefik(host) == (200, "v1\n")  # live means reachable, at once
    assert "v1" in probe.get(f"tasks.{name}_web", 8000)
    tasks = [t for t in engine.service_tasks(f"{name}_web") if t["DesiredState"] == "running"]
    assert [t["Spec"]["ContainerSpec"]["Image"] for t in tasks] == [d1.image.pinned]

    repo.commit({"index.html": "v2\n"}, "v2")
    with Hammer(host, {"v1", "v2"}) as hammer:
        d2 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
        assert d2.status == Deploy.Status.LIVE, d2.log_text
        wait_for(lambda: via_traefik(host) == (200, "v2\n"), 30, "v2 through Traefik")
        time.sleep(3)  # the old task drains and stops while requests keep coming
    assert hammer.failures == [], hammer.failures[:5]
    assert "v1" in hammer.bodies and "v2" in hammer.bodies
    # The dependency layer (RUN before COPY) came from the layer cache.
    log = d2.log_text
    assert "Using cache" in log.split("COPY index.html")[0].split("RUN mkdir")[1]
    d1.refresh_from_db()
    assert d1.status == Deploy.Status.RETIRED
    assert list(app.deploys.filter(status=Deploy.Status.LIVE)) == [d2]


def test_release_runs_once_and_predeploy_runs_in_each_container_before_the_app(
    worker, cluster_ready, unique_name, make_repo, probe
):
    name = unique_name("steps")
    repo = make_repo()
    manifest = """\
release:
  - echo release-ran-$(hostname)
predeploy:
  - echo predeploy-$(hostname) > /www/order.txt
run:
  replicas: 2
  healthcheck: {path: /order.txt, interval: 1, timeout: 1, retries: 2, start_period: 0}
"""
    files = httpd_app(cluster_ready["base"], "steps", manifest=manifest)
    files["Dockerfile"] = files["Dockerfile"].replace(
        'CMD ["httpd", "-f", "-p", "8000", "-h", "/www"]',
        'CMD ["sh", "-c", "echo app-$(hostname) >> /www/order.txt; exec httpd -f -p 8000 -h /www"]',
    )
    repo.commit(files)
    app = _app(name, repo)
    d = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d.status == Deploy.Status.LIVE, d.log_text
    ran = [line for line in d.log_text.splitlines() if line.startswith("release-ran-")]
    assert len(ran) == 1, d.log_text
    assert "release" in d.stage_seconds()
    bodies = set()
    for _ in range(20):
        out = probe.get(f"tasks.{name}_web", 8000, "/order.txt")
        bodies.add(out.split("\r\n\r\n", 1)[-1].strip())
        if len(bodies) == 2:
            break
    assert len(bodies) == 2, bodies  # two containers, each with its own predeploy run
    for body in bodies:
        first, second = body.splitlines()
        assert first.startswith("predeploy-") and second.startswith("app-")
        assert first.removeprefix("predeploy-") == second.removeprefix("app-")


def test_three_deploys_back_to_back_supersede_the_middle_one(
    worker, cluster_ready, unique_name, make_repo
):
    name = unique_name("queue")
    repo = make_repo()
    c1 = repo.commit(httpd_app(cluster_ready["base"], "one"), "1")
    app = _app(name, repo)
    first = services.deploy_create(app=app, commit=c1, trigger="manual")
    c2 = repo.commit({"index.html": "two\n"}, "2")
    c3 = repo.commit({"index.html": "three\n"}, "3")
    wait_for(
        lambda: Deploy.objects.get(pk=first.pk).status != Deploy.Status.QUEUED, 30, "first start"
    )
    middle = services.deploy_create(app=app, commit=c2, trigger="manual")
    newest = services.deploy_create(app=app, commit=c3, trigger="manual")
    wait_deploy(newest)
    for d in (first, middle):
        d.refresh_from_db()
    assert middle.status == Deploy.Status.SUPERSEDED
    assert newest.status == Deploy.Status.LIVE, newest.log_text
    assert first.status == Deploy.Status.RETIRED
    assert not middle.log_lines.exists()  # never built


def test_an_image_without_a_shell_runs_its_own_command_unwrapped(
    worker, cluster_ready, unique_name, make_repo, probe
):
    name = unique_name("noshell")
    repo = make_repo()
    dockerfile = (
        "FROM scratch\n"
        "COPY --from=" + cluster_ready["base"] + " /bin/busybox /busybox\n"
        "COPY index.html /www/index.html\n"
        'ENTRYPOINT ["/busybox", "httpd", "-f", "-p", "8000"]\n'
        'CMD ["-h", "/www"]\n'
    )
    repo.commit({"Dockerfile": dockerfile, "index.html": "distroless\n"})
    app = _app(name, repo)
    d = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d.status == Deploy.Status.LIVE, d.log_text
    assert "distroless" in probe.get(f"tasks.{name}_web", 8000)
    spec = engine.service_get(f"{name}_web")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert "Command" not in spec  # the image's ENTRYPOINT and CMD, exactly

    repo.commit({".paas/app.yaml": "predeploy: [echo hi]\n"})
    d2 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d2.status == Deploy.Status.FAILED
    assert "no /bin/sh" in d2.error and "predeploy steps" in d2.error
    assert "rollout" not in d2.stages
