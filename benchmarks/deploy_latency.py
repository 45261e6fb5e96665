"""Commit to live: the whole pipeline (clone, build, push, rollout, health-gated) for a small
sample app, first deploy and an update, with each stage's time, and the peak memory of the
process that ran it. Target: an update of a cached app goes live in well under a minute.

Run: .venv/bin/python benchmarks/deploy_latency.py (needs the engine in swarm mode; it
bootstraps the registry and Traefik with locally built images)."""

from __future__ import annotations

import os
import resource
import secrets
import tempfile
import time
from pathlib import Path

from _common import git, keep_registry_login, setup_django, write_section

os.environ.setdefault("KOYRA_HTTP_PORT", "18080")
setup_django()

from django.conf import settings  # noqa: E402

from apps.services import app_create  # noqa: E402
from deployments import cluster, local_images, pipeline  # noqa: E402
from deployments.boundaries import engine  # noqa: E402
from deployments.models import Deploy  # noqa: E402

MANIFEST = """\
run:
  healthcheck: {path: /index.html, interval: 1, timeout: 1, retries: 2, start_period: 0}
  domains: [bench.koyra.test]
"""


def main() -> None:
    settings.KOYRA_REGISTRY_IMAGE = local_images.registry_image()
    settings.KOYRA_TRAEFIK_IMAGE = local_images.traefik_image()
    base = local_images.base_image()
    keep_registry_login()
    cluster.cluster_bootstrap(say=lambda s: None)
    name = f"bench-{secrets.token_hex(3)}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        git(repo, "init", "-q", "-b", "main", ".")
        (repo / ".paas").mkdir()
        (repo / ".paas/app.yaml").write_text(MANIFEST)
        (repo / "Dockerfile").write_text(
            f"FROM {base}\nRUN mkdir -p /www && sleep 2\nCOPY index.html /www/index.html\n"
            'CMD ["httpd", "-f", "-p", "8000", "-h", "/www"]\n'
        )
        app, _ = app_create(name=name, repo_url=f"file://{repo}")
        try:
            for label in ("first deploy (cold)", "update (cached)", "update (cached)"):
                (repo / "index.html").write_text(f"{label} {time.time()}\n")
                git(repo, "add", "-A")
                git(repo, "commit", "-q", "-m", label)
                d = Deploy.objects.create(app=app, trigger="manual")
                t = time.perf_counter()
                d = pipeline.deploy_run(deploy_id=d.pk)
                total = time.perf_counter() - t
                assert d.status == Deploy.Status.LIVE, d.error
                rows.append((label, total, d.stage_seconds()))
        finally:
            engine.service_remove(app.service_name)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stages = ["clone", "build", "push", "rollout"]
    table = "| deploy | total s | " + " | ".join(stages) + " |\n|---|---|" + "---|" * len(stages)
    for label, total, st in rows:
        table += (
            f"\n| {label} | {total:.1f} | "
            + " | ".join(f"{st.get(s, 0):.2f}" for s in stages)
            + " |"
        )
    write_section(
        "Commit to live (benchmarks/deploy_latency.py)",
        f"""
{table}

Rollout is health-gated and start-first: it includes the healthcheck (interval 1 s, 2
retries), Swarm's monitor window and the wait until Traefik routes the host. Peak memory of
the process that ran the three deploys: {peak_mb:.0f} MB.
""",
    )


if __name__ == "__main__":
    main()
