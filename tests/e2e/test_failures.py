"""Every way a deploy can fail ends `failed` with a readable reason, the old version serving."""

from __future__ import annotations

import time

import pytest

from apps import services as app_services
from deployments import pipeline, services
from deployments.boundaries import engine
from deployments.models import Deploy
from tests.e2e.conftest import httpd_app, via_traefik, wait_deploy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MANIFEST = """\
run:
  healthcheck: {{path: {path}, interval: 1, timeout: 1, retries: 2, start_period: 0}}
  domains: [{host}]
{extra}"""


@pytest.fixture
def v1_live(worker, cluster_ready, unique_name, make_repo):
    """An app whose v1 is live and serving through Traefik."""
    name = unique_name("fail")
    host = f"{name}.koyra.test"
    repo = make_repo()
    manifest = MANIFEST.format(path="/index.html", host=host, extra="")
    repo.commit(httpd_app(cluster_ready["base"], "v1", manifest=manifest), "v1")
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    d1 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d1.status == Deploy.Status.LIVE, d1.log_text
    wait_for(lambda: via_traefik(host) == (200, "v1\n"), 30, "v1 through Traefik")
    return app, repo, d1, host


def assert_v1_still_serving(app, d1, host):
    d1.refresh_from_db()
    assert d1.status == Deploy.Status.LIVE
    running = [t for t in engine.service_tasks(app.service_name) if t["DesiredState"] == "running"]
    assert running
    assert {t["Spec"]["ContainerSpec"]["Image"] for t in running} == {d1.image.pinned}
    assert via_traefik(host) == (200, "v1\n")


def _deploy_v2(app, repo, files) -> Deploy:
    repo.commit(files, "v2")
    return wait_deploy(services.deploy_create(app=app, trigger="manual"))


def test_it_keeps_old_version_when_release_fails(v1_live, cluster_ready):
    app, repo, d1, host = v1_live
    manifest = MANIFEST.format(
        path="/index.html", host=host, extra="release:\n  - echo migrating; exit 3\n"
    )
    d2 = _deploy_v2(app, repo, {".paas/app.yaml": manifest, "index.html": "v2\n"})
    assert d2.status == Deploy.Status.FAILED
    assert "release step failed with exit code 3" in d2.error
    assert "migrating" in d2.log_text
    assert "rollout" not in d2.stages
    assert_v1_still_serving(app, d1, host)


def test_it_keeps_old_version_when_new_one_never_becomes_healthy(v1_live):
    app, repo, d1, host = v1_live
    manifest = MANIFEST.format(path="/missing.html", host=host, extra="")
    d2 = _deploy_v2(app, repo, {".paas/app.yaml": manifest, "index.html": "v2\n"})
    assert d2.status == Deploy.Status.FAILED, d2.log_text
    assert "rollout failed" in d2.error
    # The check, as the manifest gave it, and what its last probe said: not Swarm's raw words.
    assert "the healthcheck (GET /missing.html on port 8000) did not pass" in d2.error, d2.error
    assert "404" in d2.error and "dockerexec" not in d2.error
    assert_v1_still_serving(app, d1, host)


def test_it_keeps_old_version_when_a_predeploy_step_fails(v1_live):
    app, repo, d1, host = v1_live
    manifest = MANIFEST.format(path="/index.html", host=host, extra="predeploy:\n  - exit 4\n")
    d2 = _deploy_v2(app, repo, {".paas/app.yaml": manifest, "index.html": "v2\n"})
    assert d2.status == Deploy.Status.FAILED, d2.log_text
    assert "rollout failed" in d2.error
    assert "koyra predeploy failed: exit 4" in d2.log_text  # the task's own output
    assert_v1_still_serving(app, d1, host)


def test_it_keeps_old_version_when_the_dockerfile_fails(v1_live, cluster_ready):
    app, repo, d1, host = v1_live
    files = httpd_app(cluster_ready["base"], "v2", extra_run="RUN echo about-to-fail; exit 7\n")
    d2 = _deploy_v2(app, repo, {"Dockerfile": files["Dockerfile"]})
    assert d2.status == Deploy.Status.FAILED
    assert "docker build failed" in d2.error
    assert "exit 7" in d2.error or "returned a non-zero code: 7" in d2.error
    assert "about-to-fail" in d2.log_text
    assert_v1_still_serving(app, d1, host)


def test_it_names_file_line_and_field_of_a_bad_manifest(v1_live):
    app, repo, d1, host = v1_live
    manifest = f"run:\n  domains: [{host}]\n  port: 99999\n"
    d2 = _deploy_v2(app, repo, {".paas/app.yaml": manifest})
    assert d2.status == Deploy.Status.FAILED
    assert d2.error == ".paas/app.yaml, line 3: run.port: must be a whole number from 1 to 65535"
    assert "Step 1/" not in d2.log_text
    assert_v1_still_serving(app, d1, host)


def test_it_fails_cleanly_when_the_registry_is_unreachable(v1_live, settings):
    app, repo, d1, host = v1_live
    repo.commit({"index.html": "v2\n"}, "v2")
    settings.KOYRA_REGISTRY = "127.0.0.1:5999"  # nothing listens there
    # Koyra waits for a registry that is coming back (KOYRA_REGISTRY_WAIT_SECONDS); briefly here.
    # Meanwhile the idle worker's sweep runs: this in-process deploy's heartbeat keeps it from
    # taking the deploy for an interrupted one (it did, before deploys had a heartbeat).
    settings.KOYRA_REGISTRY_WAIT_SECONDS = 15
    # In this process (the shared worker keeps the real registry): same pipeline code.
    d2 = Deploy.objects.create(app=app, trigger="manual")
    d2 = pipeline.deploy_run(deploy_id=d2.pk)
    assert d2.status == Deploy.Status.FAILED
    assert "push to the registry failed" in d2.error
    assert "5999" in d2.error
    assert_v1_still_serving(app, d1, host)


def test_a_deploy_that_runs_too_long_is_stopped_and_says_why(v1_live, settings, cluster_ready):
    app, repo, d1, host = v1_live
    files = httpd_app(cluster_ready["base"], "v2", extra_run="RUN sleep 120\n")
    repo.commit({"Dockerfile": files["Dockerfile"]}, "slow")
    settings.KOYRA_DEPLOY_TIMEOUT = 6
    d2 = Deploy.objects.create(app=app, trigger="manual")
    started = time.monotonic()
    d2 = pipeline.deploy_run(deploy_id=d2.pk)
    assert time.monotonic() - started < 30
    assert d2.status == Deploy.Status.FAILED
    assert "timed out after 6s" in d2.error
    assert_v1_still_serving(app, d1, host)
    # The daemon stopped the build: no container of it keeps sleeping.
    wait_for(lambda: not _sleeping_build_containers(), 30, "the build container to go")


def _sleeping_build_containers() -> list:
    from docker import from_env

    return [
        c
        for c in from_env().containers.list()
        if c.attrs["Config"].get("Cmd") and "sleep 120" in " ".join(c.attrs["Config"]["Cmd"])
    ]


def test_cancel_stops_the_running_build(v1_live, cluster_ready):
    app, repo, d1, host = v1_live
    files = httpd_app(cluster_ready["base"], "v2", extra_run="RUN echo slow-step; sleep 120\n")
    repo.commit({"Dockerfile": files["Dockerfile"]}, "slow")
    d2 = services.deploy_create(app=app, trigger="manual")
    wait_for(lambda: "slow-step" in Deploy.objects.get(pk=d2.pk).log_text, 60, "the slow step")
    assert services.deploy_cancel(app=app).pk == d2.pk
    wait_deploy(d2, timeout=30)
    assert d2.status == Deploy.Status.CANCELLED, (d2.error, d2.log_text[-600:])
    assert_v1_still_serving(app, d1, host)
    wait_for(lambda: not _sleeping_build_containers(), 30, "the build container to go")


def test_an_interrupted_deploy_is_failed_and_a_lost_job_is_enqueued_again(v1_live):
    """The database is the truth: the idle worker's sweep fixes what Redis or a crash left."""
    app, repo, d1, host = v1_live
    stuck = Deploy.objects.create(app=app, trigger="manual", status=Deploy.Status.BUILDING)
    repo.commit({"index.html": "v2\n"}, "v2")
    # Queued and marked as handed to Redis, but Redis never got it (e.g. restarted).
    lost = Deploy.objects.create(app=app, trigger="manual", enqueued=d1.created)
    wait_deploy(stuck, timeout=60)
    assert stuck.status == Deploy.Status.FAILED
    assert "interrupted" in stuck.error
    wait_deploy(lost, timeout=120)
    assert lost.status == Deploy.Status.LIVE, lost.log_text
    wait_for(lambda: via_traefik(host) == (200, "v2\n"), 30, "v2 through Traefik")


def test_cancel_during_the_rollout_puts_the_live_version_back(v1_live):
    app, repo, d1, host = v1_live
    manifest = (
        "predeploy:\n  - sleep 60\nrun:\n  healthcheck: {path: /index.html, interval: 1, "
        f"timeout: 1, retries: 2, start_period: 90}}\n  domains: [{host}]\n"
    )
    repo.commit({".paas/app.yaml": manifest, "index.html": "v2\n"}, "slow start")
    d2 = services.deploy_create(app=app, trigger="manual")
    wait_for(lambda: Deploy.objects.get(pk=d2.pk).status == Deploy.Status.DEPLOYING, 60, "rollout")
    time.sleep(2)
    services.deploy_cancel(app=app)
    wait_deploy(d2, timeout=30)
    assert d2.status == Deploy.Status.CANCELLED, (d2.error, d2.log_text[-500:])

    def back_on_v1():
        running = [
            t for t in engine.service_tasks(app.service_name) if t["DesiredState"] == "running"
        ]
        return {t["Spec"]["ContainerSpec"]["Image"] for t in running} == {d1.image.pinned}

    wait_for(back_on_v1, 60, "the service to run v1 only")
    assert_v1_still_serving(app, d1, host)


def test_a_deploy_queued_while_redis_was_down_runs_once_redis_answers(v1_live, settings):
    app, repo, _, host = v1_live
    repo.commit({"index.html": "v2\n"}, "v2")
    live_url = settings.RQ_QUEUES["deploys"]["URL"]
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}
    d2 = services.deploy_create(app=app, trigger="manual")  # Redis is down for this side
    d2.refresh_from_db()
    assert d2.status == Deploy.Status.QUEUED and d2.enqueued is None
    settings.RQ_QUEUES = {"deploys": {"URL": live_url, "DEFAULT_TIMEOUT": 60}}
    # The worker's sweep reads the database, the queue of record, and enqueues it once.
    wait_deploy(d2, timeout=120)
    assert d2.status == Deploy.Status.LIVE, d2.log_text
    assert d2.log_text.count("==> clone") == 1
    wait_for(lambda: via_traefik(host) == (200, "v2\n"), 30, "v2 through Traefik")
