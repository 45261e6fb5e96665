"""Read-only queries about deploys: what is live, the releases a rollback walks through, the
rows of the list pages. Services, retention and views read from here; this module depends on
the models alone, so the arrows point one way."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from apps.models import App
from deployments.models import Deploy
from deployments.release_spec import ReleaseSpec


def live_deploy(app: App) -> Deploy | None:
    """The deploy whose image the app's service runs (at most one per app)."""
    return app.deploys.filter(status=Deploy.Status.LIVE).select_related("image").first()


def release_root(deploy: Deploy) -> Deploy:
    """The build deploy whose image and spec a redeploy or rollback re-applies."""
    seen = set()
    while (
        deploy.trigger not in Deploy.BUILD_TRIGGERS
        and deploy.source_id
        and deploy.pk not in seen
        and deploy.source is not None
    ):
        seen.add(deploy.pk)
        deploy = deploy.source
    return deploy


def release_stack(app: App) -> list[Deploy]:
    """The releases a rollback can walk back through, oldest first, current last. A build
    pushes its release; a rollback to X pops back to X (so the release rolled away from is
    never a target again); a redeploy changes nothing."""
    stack: list[Deploy] = []
    went_live = (
        app.deploys.filter(status__in=(Deploy.Status.LIVE, Deploy.Status.RETIRED))
        .select_related("source", "image")
        .order_by("finished", "id")
    )
    for d in went_live:
        root = release_root(d)
        if d.trigger == "rollback" and any(r.pk == root.pk for r in stack):
            while stack[-1].pk != root.pk:
                stack.pop()
        elif not stack or stack[-1].pk != root.pk:
            stack.append(root)
    return stack


def rollback_target(app: App) -> Deploy | None:
    """What a plain rollback would go back to: the release before the current one."""
    stack = release_stack(app)
    return stack[-2] if len(stack) >= 2 else None


def domains_live_elsewhere(app: App) -> dict[str, str]:
    """Host name -> the other app whose live release routes it (its manifest may add domains
    the app's settings do not list)."""
    claimed: dict[str, str] = {}
    live = Deploy.objects.filter(status=Deploy.Status.LIVE).exclude(app=app).select_related("app")
    for d in live:
        claimed.update({host: d.app.name for host in ReleaseSpec.from_json(d.spec).domains})
    return claimed


def app_rows(apps: QuerySet[App]) -> list[App]:
    """The apps list: each app with its last deploy (id, status, created) and its live deploy
    (id, commit), in one query."""
    of_app = Deploy.objects.filter(app=OuterRef("pk"))
    last = of_app.order_by("-created", "-id")
    live = of_app.filter(status=Deploy.Status.LIVE)
    return list(
        apps.annotate(
            last_id=Subquery(last.values("pk")[:1]),
            last_status=Subquery(last.values("status")[:1]),
            last_created=Subquery(last.values("created")[:1]),
            live_id=Subquery(live.values("pk")[:1]),
            live_commit=Subquery(live.values("commit")[:1]),
        ).order_by("name")
    )


def any_pending(rows: list[App]) -> bool:
    """Whether one of the `app_rows` has a deploy queued or running (the list refreshes faster)."""
    # last_status is the annotation app_rows adds; the stubs cannot see it on App.
    return any(row.last_status in Deploy.PENDING for row in rows)  # type: ignore[attr-defined]


def app_overview(app: App, *, history: int = 30) -> dict[str, Any]:
    """What the app page shows of its deploys: live one, rollback target, recent history."""
    live = live_deploy(app)
    return {
        "live": live,
        "rollback_to": rollback_target(app) if live else None,
        "deploys": list(app.deploys.all()[:history]),
        "pending": app.deploys.filter(status__in=Deploy.PENDING).exists(),
    }
