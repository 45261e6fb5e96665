"""Read-only queries about deploys: what is live, the releases a rollback walks through, the
rows of the list pages. Services, retention and views read from here; this module depends on
the models alone, so the arrows point one way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.text import slugify

from apps.models import App
from deployments.models import Deploy, PruneRun
from deployments.release_spec import ReleaseSpec


def live_deploy(app: App) -> Deploy | None:
    """The deploy whose image the app's service runs (at most one per app)."""
    return app.deploys.filter(status=Deploy.Status.LIVE).select_related("image").first()


def manifest_secrets(app: App) -> list[str]:
    """The secret names the app needs: those of the newest manifest a build read (what the next
    push deploys, even when that build failed for a missing one), then those of the live
    release (what a redeploy or rollback re-applies)."""
    newest = (
        app.deploys.filter(manifest_secrets__isnull=False)
        .order_by("-pk")
        .values_list("manifest_secrets", flat=True)
        .first()
    )
    live = app.deploys.filter(status=Deploy.Status.LIVE).values_list("spec", flat=True).first()
    names = [*(newest or []), *((live or {}).get("secrets") or [])]
    return [n for n in dict.fromkeys(names) if isinstance(n, str)]


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
    """The apps list: each app with its last deploy (id, status, created, error) and its live
    deploy (id, commit, subject, since, spec), in one query whatever the number of apps."""
    of_app = Deploy.objects.filter(app=OuterRef("pk"))
    last = of_app.order_by("-created", "-id")
    live = of_app.filter(status=Deploy.Status.LIVE)
    return list(
        apps.annotate(
            last_id=Subquery(last.values("pk")[:1]),
            last_status=Subquery(last.values("status")[:1]),
            last_created=Subquery(last.values("created")[:1]),
            last_error=Subquery(last.values("error")[:1]),
            live_id=Subquery(live.values("pk")[:1]),
            live_commit=Subquery(live.values("commit")[:1]),
            live_message=Subquery(live.values("commit_message")[:1]),
            live_finished=Subquery(live.values("finished")[:1]),
            live_spec=Subquery(live.values("spec")[:1]),
        ).order_by("name")
    )


@dataclass(frozen=True)
class Serving:
    """The release an app's service runs: its live deploy."""

    deploy_id: int
    commit: str
    subject: str  # first line of the commit message ("" when not recorded)
    since: datetime | None  # when it went live
    domains: list[str]  # what Traefik routes to it: the live release's domains


@dataclass(frozen=True)
class AppState:
    """What serves an app, apart from how its latest deploy went: a failed deploy whose
    previous release keeps serving reads `serving`, with a warning. The derived values are
    computed once (a page reads `state` several times per app, for 100 apps)."""

    serving: Serving | None
    latest_id: int | None
    latest_status: str  # "" when never deployed
    latest_error: str
    replicas: tuple[int, int] | None  # healthy, desired (Swarm); None: the engine did not answer

    @cached_property
    def state(self) -> str:
        """serving, degraded, down, deploying, failed, not serving or never deployed."""
        if self.serving is not None:
            if self.replicas is None:
                return "serving"  # unknown counts: the record says it serves
            healthy, total = self.replicas
            if healthy == 0:
                return "down"
            return "degraded" if healthy < total else "serving"
        if self.latest_status in Deploy.PENDING:
            return "deploying"
        if self.latest_status == Deploy.Status.FAILED:
            return "failed"
        return "not serving" if self.latest_id else "never deployed"

    @cached_property
    def latest_failed(self) -> bool:
        """The latest deploy failed while an earlier release keeps serving."""
        return (
            self.serving is not None
            and self.latest_status == Deploy.Status.FAILED
            and self.latest_id != self.serving.deploy_id
        )

    @cached_property
    def warnings(self) -> list[str]:
        out = []
        if self.latest_failed and self.serving is not None:
            out.append(
                f"latest deploy #{self.latest_id} failed; #{self.serving.deploy_id} keeps serving"
            )
        if self.serving is not None and self.replicas is not None:
            healthy, total = self.replicas
            if total == 0:
                out.append("no task of its service runs in the Swarm")
            elif healthy < total:
                out.append(f"{healthy} of {total} replicas healthy")
        return out

    @cached_property
    def url(self) -> str:
        """The running app at its first domain, as Traefik serves it; "" without one."""
        if self.serving is None or not self.serving.domains:
            return ""
        return host_url(self.serving.domains[0])

    @cached_property
    def state_class(self) -> str:
        """The state as a CSS class suffix: "not serving" -> "not-serving"."""
        return slugify(self.state)

    @property
    def desired(self) -> int:
        """Desired tasks (0 when the engine did not answer: `replicas` is None)."""
        return self.replicas[1] if self.replicas else 0

    @property
    def replicas_short(self) -> bool:
        """Fewer healthy tasks than desired, or none desired (shown as a warning)."""
        return self.replicas is not None and (self.replicas[0] < self.desired or not self.desired)

    @cached_property
    def replicas_label(self) -> str:
        """The counts as the pages show them, "healthy/desired" ("" when the engine did not
        answer). Text, not numbers: the template engine localizes each number it prints."""
        return "" if self.replicas is None else f"{self.replicas[0]}/{self.replicas[1]}"


def host_url(host: str) -> str:
    """The URL of `host` on Koyra's ingress: https with ACME, the published port if unusual."""
    if settings.KOYRA_ACME_EMAIL:
        scheme, port, default = "https", settings.KOYRA_HTTPS_PORT, 443
    else:
        scheme, port, default = "http", settings.KOYRA_HTTP_PORT, 80
    return f"{scheme}://{host}" + ("" if port == default else f":{port}")


def row_state(row: App, replicas: dict[str, tuple[int, int]] | None) -> AppState:
    """The state of one of the `app_rows`; `replicas` is app_state.replica_counts() (one
    engine call for every app), None when the engine did not answer."""
    a: Any = row  # the annotations app_rows adds; the stubs cannot see them on App
    serving = None
    if a.live_id:
        serving = Serving(
            deploy_id=a.live_id,
            commit=a.live_commit or "",
            subject=(a.live_message or "").split("\n", 1)[0],
            since=a.live_finished,
            domains=ReleaseSpec.from_json(a.live_spec or {}).domains,
        )
    return AppState(
        serving=serving,
        latest_id=a.last_id,
        latest_status=a.last_status or "",
        latest_error=a.last_error or "",
        replicas=_replicas_of(row, replicas),
    )


def _replicas_of(app: App, replicas: dict[str, tuple[int, int]] | None) -> tuple[int, int] | None:
    return None if replicas is None else replicas.get(app.service_name, (0, 0))


def _page_state(
    app: App,
    live: Deploy | None,
    latest: Deploy | None,
    replicas: dict[str, tuple[int, int]] | None,
) -> AppState:
    """The state of one app from its live and newest deploys, loaded for its page: what
    row_state() reads from the list's annotations, by the same rules."""
    serving = None
    if live is not None:
        serving = Serving(
            deploy_id=live.pk,
            commit=live.commit,
            subject=live.commit_subject,
            since=live.finished,
            domains=ReleaseSpec.from_json(live.spec or {}).domains,
        )
    return AppState(
        serving=serving,
        latest_id=latest.pk if latest else None,
        latest_status=latest.status if latest else "",
        latest_error=latest.error if latest else "",
        replicas=_replicas_of(app, replicas),
    )


def any_pending(rows: list[App]) -> bool:
    """Whether one of the `app_rows` has a deploy queued or running (the list refreshes faster)."""
    # last_status is the annotation app_rows adds; the stubs cannot see it on App.
    return any(row.last_status in Deploy.PENDING for row in rows)  # type: ignore[attr-defined]


def app_overview(
    app: App, replicas: dict[str, tuple[int, int]] | None, *, history: int = 30
) -> dict[str, Any]:
    """What the app page shows of its deploys: its state (`replicas` as in row_state), live
    one, rollback target, recent history (newest first, so the first is the latest)."""
    live = live_deploy(app)
    deploys = list(app.deploys.select_related("image")[:history])
    return {
        "st": _page_state(app, live, deploys[0] if deploys else None, replicas),
        "live": live,
        "rollback_to": rollback_target(app) if live else None,
        "deploys": deploys,
        "promotable": promotable(deploys, live),
        "pending": app.deploys.filter(status__in=Deploy.PENDING).exists(),
    }


def is_kept_release(deploy: Deploy) -> bool:
    """A build that went live and whose image is kept: a release one can promote back to."""
    return (
        deploy.trigger in Deploy.BUILD_TRIGGERS
        and deploy.status in (Deploy.Status.LIVE, Deploy.Status.RETIRED)
        and bool(deploy.spec)
        and deploy.image is not None
        and deploy.image.deleted is None
    )


def promotable(deploys: list[Deploy], live: Deploy | None) -> set[int]:
    """The pks of the `deploys` that are kept releases other than the one live now (older or
    newer): what the history offers to promote (services.rollback_create(to=...))."""
    current = release_root(live).pk if live is not None else None
    return {d.pk for d in deploys if d.pk != current and is_kept_release(d)}


def prune_due() -> bool:
    """Whether the scheduled prune (deployments/retention.py) is due: the worker asks at each
    sweep, from here, so that its process need not load retention and the engine to know."""
    hours = settings.KOYRA_PRUNE_EVERY_HOURS
    if hours <= 0:
        return False
    last = PruneRun.objects.filter(dry_run=False).first()
    return last is None or last.started < timezone.now() - timedelta(hours=hours)
