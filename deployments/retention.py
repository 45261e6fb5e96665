"""Image lifecycle: keep exactly what rollback needs, remove the rest from the registry and
this engine, and free the blobs (SPEC §3 rollback, issue: disks that never fill)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.utils import timezone

from apps.models import App
from deployments import cluster, selectors
from deployments.boundaries import engine, registry
from deployments.models import Deploy, Image, PruneRun

log = logging.getLogger(__name__)
REGISTRY_CONFIG = "/etc/docker/registry/config.yml"


def retention_plan(*, app: App, keep: int | None = None) -> tuple[list[Image], list[Image]]:
    """(kept, to delete) among the app's images still in the registry."""
    keep = settings.KOYRA_KEEP_RELEASES if keep is None else keep
    images = list(app.images.filter(deleted__isnull=True).order_by("-created"))
    keep_ids: set[int] = set()
    went_live = app.deploys.filter(status__in=(Deploy.Status.LIVE, Deploy.Status.RETIRED)).order_by(
        "-finished", "-id"
    )
    recent: list[int] = []
    for d in went_live.select_related("source"):
        image_id = selectors.release_root(d).image_id or d.image_id
        if image_id and image_id not in recent:
            recent.append(image_id)
    keep_ids.update(recent[:keep])
    stack = selectors.release_stack(app)
    keep_ids.update(d.image_id for d in stack[-2:] if d.image_id)  # live + rollback target
    for d in app.deploys.filter(status__in=Deploy.PENDING).select_related("source"):
        keep_ids.update(i for i in (d.image_id, d.source and d.source.image_id) if i)
    kept = [i for i in images if i.pk in keep_ids]
    return kept, [i for i in images if i.pk not in keep_ids]


def retention_apply(
    *, app: App, dry_run: bool = False, say: Callable[[str], None] = log.info
) -> list[Image]:
    """Delete the app's images that retention does not keep: registry manifest (and so its
    tag) by digest, then the local tag. Returns the images deleted (or that would be)."""
    _, doomed = retention_plan(app=app)
    for image in doomed:
        say(f"{'would delete' if dry_run else 'delete'} {image.pinned} ({image.commit[:12]})")
        if dry_run:
            continue
        registry.delete_manifest(app.name, image.digest)
        engine.image_remove(image.ref)
        Image.objects.filter(pk=image.pk).update(deleted=timezone.now())
    return doomed


def prune_all(*, dry_run: bool = False, say: Callable[[str], None] = log.info) -> PruneRun:
    """Retention for every app, then the registry's garbage collection (so blobs are really
    freed), dangling local images and the build cache cap. One log line says what was freed."""
    before = engine.disk_usage(cluster.REGISTRY_VOLUME)
    deleted = sum(len(retention_apply(app=a, dry_run=dry_run, say=say)) for a in App.objects.all())
    notes = []
    if not dry_run:
        # GC must not race a push (it would drop blobs not yet referenced by a manifest).
        if Deploy.objects.filter(status__in=Deploy.ACTIVE).exists():
            notes.append("registry garbage collection skipped: a deploy is running")
        else:
            notes.append(
                f"registry gc: {engine.registry_gc(cluster.REGISTRY_SERVICE, REGISTRY_CONFIG)}"
            )
        engine.images_prune_dangling()
        engine.build_cache_prune(settings.KOYRA_BUILD_CACHE_MAX_BYTES)
    after = engine.disk_usage(cluster.REGISTRY_VOLUME)
    freed = sum(before.values()) - sum(after.values())
    summary = (
        f"prune{' (dry run)' if dry_run else ''}: {deleted} image(s) "
        f"{'to delete' if dry_run else 'deleted'}; freed {_human(max(freed, 0))} "
        f"(registry {_human(before['registry'])} -> {_human(after['registry'])}, images "
        f"{_human(before['images'])} -> {_human(after['images'])})"
        + "".join(f"; {n}" for n in notes)
    )
    say(summary)
    return PruneRun.objects.create(
        dry_run=dry_run, images_deleted=deleted, freed_bytes=max(freed, 0), summary=summary
    )


def disk_usage() -> dict[str, int]:
    return engine.disk_usage(cluster.REGISTRY_VOLUME)


def disk_report() -> dict:
    """What the dashboard shows: bytes used by images, registry blobs and build cache (None
    each when the engine does not answer), and the last prune. Cached for a minute: asking
    the engine to size every volume is not free."""
    from django.core.cache import cache

    report = cache.get("koyra:disk-report")
    if report is None:
        try:
            report = {"error": "", **disk_usage()}
        except engine.EngineError as exc:
            report = {"error": str(exc), "images": None, "registry": None, "build_cache": None}
        cache.set("koyra:disk-report", report, 60)
    return {**report, "last_prune": PruneRun.objects.filter(dry_run=False).first()}


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
