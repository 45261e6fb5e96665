"""Rollback to a known-good release without a build, and retention that frees the disk."""

from __future__ import annotations

import pytest

from apps import services as app_services
from deployments import retention, services
from deployments.boundaries import engine, registry
from deployments.models import Deploy
from tests.e2e.conftest import E2E_KEEP_RELEASES, httpd_app, via_traefik, wait_deploy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MANIFEST = """\
run:
  healthcheck: {{path: {path}, interval: 1, timeout: 1, retries: 2, start_period: 0}}
  domains: [{host}]
"""


def _setup(name, repo, base, host, text="v0"):
    repo.commit(httpd_app(base, text, manifest=MANIFEST.format(path="/index.html", host=host)))
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    return app


def _release(app, repo, text) -> Deploy:
    repo.commit({"index.html": f"{text}\n"}, text)
    d = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d.status == Deploy.Status.LIVE, d.log_text
    return d


def _serves(host, text):
    wait_for(lambda: via_traefik(host) == (200, f"{text}\n"), 30, f"{text} through Traefik")


def test_rollback_serves_the_previous_release_without_a_build_and_walks_further_back(
    worker, cluster_ready, unique_name, make_repo
):
    name = unique_name("rb")
    host = f"{name}.koyra.test"
    repo = make_repo()
    app = _setup(name, repo, cluster_ready["base"], host)
    v0 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    v1 = _release(app, repo, "v1")
    v2 = _release(app, repo, "v2")
    _serves(host, "v2")

    r1 = wait_deploy(services.rollback_create(app=app))
    assert r1.status == Deploy.Status.LIVE, r1.log_text
    assert (r1.trigger, r1.source_id, r1.image_id) == ("rollback", v1.pk, v1.image_id)
    assert "Step 1/" not in r1.log_text and "==> build" not in r1.log_text
    assert "==> clone" not in r1.log_text
    running = [t for t in engine.service_tasks(app.service_name) if t["DesiredState"] == "running"]
    assert {t["Spec"]["ContainerSpec"]["Image"] for t in running} == {v1.image.pinned}
    _serves(host, "v1")
    v2.refresh_from_db()
    assert v2.status == Deploy.Status.RETIRED

    r2 = wait_deploy(services.rollback_create(app=app))
    assert r2.status == Deploy.Status.LIVE, r2.log_text
    assert r2.source_id == v0.pk  # one further back, not back to v2
    _serves(host, "v0")


def test_rollback_to_an_unhealthy_release_fails_and_keeps_the_current_one(
    worker, cluster_ready, unique_name, make_repo
):
    name = unique_name("rbbad")
    host = f"{name}.koyra.test"
    repo = make_repo()
    # A release that cannot become healthy any more (as when a dependency it needs is gone):
    # its recorded spec now checks a path its image does not serve.
    app = _setup(name, repo, cluster_ready["base"], host)
    v0 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    v1 = _release(app, repo, "v1")
    Deploy.objects.filter(pk=v0.pk).update(
        spec={**v0.spec, "healthcheck": {**v0.spec["healthcheck"], "path": "/gone.html"}}
    )
    r = wait_deploy(services.rollback_create(app=app))
    assert r.status == Deploy.Status.FAILED, r.log_text
    assert "rollout failed" in r.error
    v1.refresh_from_db()
    assert v1.status == Deploy.Status.LIVE
    _serves(host, "v1")


def test_retention_keeps_the_last_n_releases_and_frees_blobs(
    worker, cluster_ready, unique_name, make_repo, settings
):
    keep = E2E_KEEP_RELEASES  # the worker's KOYRA_KEEP_RELEASES
    settings.KOYRA_KEEP_RELEASES = keep  # and this process's, for prune_all below
    name = unique_name("keep")
    host = f"{name}.koyra.test"
    repo = make_repo()
    app = _setup(name, repo, cluster_ready["base"], host, text="r0")
    deploys = [wait_deploy(services.deploy_create(app=app, trigger="manual"))]
    # Each release adds a unique 200 KB layer, so freed blobs are measurable.
    files = httpd_app(cluster_ready["base"], "x", extra_run="")
    dockerfile = files["Dockerfile"].replace(
        "COPY index.html", "COPY blob.bin /blob.bin\nCOPY index.html"
    )
    for i in range(1, keep + 2):
        repo.commit(
            {"Dockerfile": dockerfile, "blob.bin": f"{i}" * 200_000, "index.html": f"r{i}\n"}
        )
        d = wait_deploy(services.deploy_create(app=app, trigger="manual"))
        assert d.status == Deploy.Status.LIVE, d.log_text
        deploys.append(d)
    # Retention runs once the deploy is live, which is when wait_deploy returns: its log line,
    # written after every deletion, says it is done.
    last = deploys[-1].pk
    wait_for(
        lambda: "retention: removed" in Deploy.objects.get(pk=last).log_text,
        30,
        "retention after the last release",
    )
    tags = registry.tags(name)
    assert len(tags) == keep
    assert set(tags) == {_tag(d) for d in deploys[-keep:]}

    before = retention.disk_usage()["registry"]
    run = retention.prune_all(say=lambda s: None)
    after = retention.disk_usage()["registry"]
    assert after < before, (before, after, run.summary)
    assert "registry gc" in run.summary

    oldest_kept = deploys[-keep]
    r = wait_deploy(services.rollback_create(app=app, to=oldest_kept))
    assert r.status == Deploy.Status.LIVE, r.log_text
    _serves(host, f"r{len(deploys) - keep}")
    with pytest.raises(Exception, match="pruned"):
        services.rollback_create(app=app, to=deploys[0])


def test_prune_dry_run_says_what_would_go_and_prune_removes_it(
    worker, cluster_ready, unique_name, make_repo, settings
):
    from io import StringIO

    from django.core.management import call_command

    name = unique_name("prune")
    repo = make_repo()
    app = _setup(name, repo, cluster_ready["base"], f"{name}.koyra.test", text="p0")
    first = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    _release(app, repo, "p1")
    _release(app, repo, "p2")
    settings.KOYRA_KEEP_RELEASES = 1  # keeps p2 (live) and p1 (the rollback target)

    out = StringIO()
    call_command("prune", "--dry-run", stdout=out)
    text = out.getvalue()
    assert f"would delete {first.image.pinned}" in text
    assert "prune (dry run): " in text
    assert _tag(first) in registry.tags(name)

    out = StringIO()
    call_command("prune", stdout=out)
    assert f"delete {first.image.pinned}" in out.getvalue()
    assert "freed" in out.getvalue()
    assert _tag(first) not in registry.tags(name)
    assert len(registry.tags(name)) == 2
    first.image.refresh_from_db()
    assert first.image.deleted is not None


def _tag(deploy) -> str:
    """The registry tag of a deploy's image: its commit and random bits (pipeline)."""
    tag = deploy.image.ref.rsplit(":", 1)[-1]
    assert tag.startswith(f"{deploy.commit}-")
    return tag
