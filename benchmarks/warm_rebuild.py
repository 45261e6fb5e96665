"""Warm rebuild (issue 16 item 2): an app whose dependency layer takes DEPS_SECONDS, deployed
through the real pipeline (pipeline.deploy_run: clone, build, push, rollout), then code-only
changes. The build stage's time (Deploy.stages) of each warm deploy is compared with the cold
one and with a manual `docker build` by argv on the same clone right after it, after another
code-only change so it does the same work (dependency layer from the cache, one new COPY
layer), with the same layer cache: the classic builder, which Koyra's engine.build drives
(DOCKER_BUILDKIT=0; BuildKit keeps a separate cache). Also shown: the manual build with
nothing changed (the floor). Targets: warm build <= 0.2x
cold and <= 1.1x manual (medians).

Run: .venv/bin/python benchmarks/warm_rebuild.py [warm runs, default 3] (needs the engine in
swarm mode; bootstraps the registry and Traefik like deploy_latency.py)."""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
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

DEPS_SECONDS = 20
MANIFEST = """\
run:
  healthcheck: {path: /index.html, interval: 1, timeout: 1, retries: 2, start_period: 0}
"""


def manual_build(repo: Path, tag: str) -> float:
    t = time.perf_counter()
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, "."],
        cwd=repo,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t


def deploy(app, repo: Path, label: str) -> tuple[float, dict[str, float]]:
    (repo / "index.html").write_text(f"{label} {time.time()}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", label)
    d = Deploy.objects.create(app=app, trigger="manual")
    t = time.perf_counter()
    d = pipeline.deploy_run(deploy_id=d.pk)
    total = time.perf_counter() - t
    assert d.status == Deploy.Status.LIVE, d.error
    return total, d.stage_seconds()


def main() -> int:
    warm_runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    settings.KOYRA_REGISTRY_IMAGE = local_images.registry_image()
    settings.KOYRA_TRAEFIK_IMAGE = local_images.traefik_image()
    base = local_images.base_image()
    keep_registry_login()
    cluster.cluster_bootstrap(say=lambda s: None)
    name = f"bench-warm-{secrets.token_hex(3)}"
    manual_tag = f"koyra-bench/manual:{secrets.token_hex(3)}"
    salt = secrets.token_hex(4)  # a fresh dependency layer: a truly cold first build
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        git(repo, "init", "-q", "-b", "main", ".")
        (repo / ".paas").mkdir()
        (repo / ".paas/app.yaml").write_text(MANIFEST)
        (repo / "Dockerfile").write_text(
            f"FROM {base}\nRUN sleep {DEPS_SECONDS} && echo deps-{salt} > /deps\n"
            "RUN mkdir -p /www\nCOPY index.html /www/index.html\n"
            'CMD ["httpd", "-f", "-p", "8000", "-h", "/www"]\n'
        )
        app, _ = app_create(name=name, repo_url=f"file://{repo}")
        try:
            cold_total, cold = deploy(app, repo, "cold")
            rows = []
            for i in range(warm_runs):
                total, st = deploy(app, repo, f"warm {i + 1}")
                # The same work by hand: another code-only change, built with the same cache
                # (the dependency layer hit, the COPY layer new, as Koyra's build just did).
                (repo / "index.html").write_text(f"manual {i} {time.time()}\n")
                manual = manual_build(repo, manual_tag)
                noop = manual_build(repo, manual_tag)  # everything cached: the floor
                rows.append((total, st, manual, noop))
        finally:
            engine.service_remove(app.service_name)
            built = subprocess.run(
                ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            mine = [r for r in built if r.startswith(f"{settings.KOYRA_REGISTRY}/{name}:")]
            subprocess.run(["docker", "image", "rm", "-f", manual_tag, *mine], capture_output=True)
    cold_build = cold["build"]
    warm = [st["build"] for _, st, _, _ in rows]
    by_hand = [m for _, _, m, _ in rows]
    ratio_cold = statistics.median(warm) / cold_build
    ratio_manual = statistics.median(w / m for w, m in zip(warm, by_hand, strict=True))
    ok = ratio_cold <= 0.2 and ratio_manual <= 1.1
    table = (
        "| deploy | total s | build s (Deploy.stages) | manual s | build / manual | no-op s |\n"
        "|---|---|---|---|---|---|\n"
        f"| cold (dependency layer sleeps {DEPS_SECONDS} s) | {cold_total:.1f} | "
        f"{cold_build:.2f} | - | - | - |\n"
    )
    for i, (total, st, m, noop) in enumerate(rows, 1):
        table += f"| warm {i} (code-only change) | {total:.1f} | {st['build']:.2f} | {m:.2f} | "
        table += f"{st['build'] / m:.2f} | {noop:.2f} |\n"
    write_section(
        "Warm rebuild through the pipeline (benchmarks/warm_rebuild.py)",
        f"""
{table}
Warm build / cold build (median): **{ratio_cold:.3f}x** (target <= 0.2x). Warm build /
manual `DOCKER_BUILDKIT=0 docker build` of the same clone right after it, after another
code-only change so it does the same work (median of the per-run ratios):
**{ratio_manual:.2f}x** (target <= 1.1x). Spread of the warm builds:
{min(warm):.2f}-{max(warm):.2f} s; manual: {min(by_hand):.2f}-{max(by_hand):.2f} s. "no-op" is
the manual build run once more with nothing changed (every step cached).
{"Both targets met." if ok else "TARGET MISSED."}
""",
    )
    print(f"warm/cold {ratio_cold:.3f}x, warm/manual {ratio_manual:.2f}x: {'OK' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
