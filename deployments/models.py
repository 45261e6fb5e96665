from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from apps.models import App


class Image(models.Model):
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="images")
    ref = models.CharField(max_length=300)  # <registry>/<app>:<commit>
    digest = models.CharField(max_length=80)  # sha256:... in the registry
    commit = models.CharField(max_length=40)
    size = models.BigIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    deleted = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.pinned

    @property
    def pinned(self) -> str:
        """ref@digest: what the service runs, so every node runs the very same bytes."""
        return f"{self.ref.rsplit(':', 1)[0]}@{self.digest}"


class Deploy(models.Model):
    class Status(models.TextChoices):
        # Labels equal the values: the status is shown (and scripted against) as it is stored.
        QUEUED = "queued", "queued"
        BUILDING = "building", "building"
        PUSHING = "pushing", "pushing"
        RELEASING = "releasing", "releasing"
        DEPLOYING = "deploying", "deploying"
        LIVE = "live", "live"
        FAILED = "failed", "failed"
        SUPERSEDED = "superseded", "superseded"
        CANCELLED = "cancelled", "cancelled"
        RETIRED = "retired", "retired"

    ACTIVE = (Status.BUILDING, Status.PUSHING, Status.RELEASING, Status.DEPLOYING)
    PENDING = (Status.QUEUED, *ACTIVE)
    FINISHED = (Status.LIVE, Status.FAILED, Status.SUPERSEDED, Status.CANCELLED, Status.RETIRED)
    # Triggers that build an image; the others re-apply a recorded release.
    BUILD_TRIGGERS = ("push", "workflow_run", "manual")
    # Triggers of GitHub's webhooks: their commits may arrive out of order, so git decides
    # which one deploys (deployments/ordering.py), never the order of arrival.
    WEBHOOK_TRIGGERS = ("push", "workflow_run")

    TRIGGERS = ["push", "workflow_run", "manual", "redeploy", "rollback"]

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="deploys")
    commit = models.CharField(max_length=40, blank=True)  # resolved at clone when blank
    # Recorded at clone (deployments/commits.py), copied by a redeploy or rollback: what the
    # history shows beside the SHA. Repository content: untrusted, escaped wherever shown.
    commit_message = models.TextField(blank=True)
    commit_author = models.CharField(max_length=200, blank=True)
    trigger = models.CharField(max_length=20, choices=[(t, t) for t in TRIGGERS])
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    image = models.ForeignKey(
        Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="deploys"
    )
    # For redeploy/rollback: the deploy whose image (and, for rollback, spec) is reused.
    source = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    # {"clone": {"started": iso, "finished": iso}, ...}
    stages = models.JSONField(default=dict, blank=True)
    # The service spec this deploy applied (no secret values): what a rollback re-applies.
    spec = models.JSONField(default=dict, blank=True)
    # The secret names its commit's manifest lists, recorded as soon as a build read it (before
    # it can fail for a missing one): null when no manifest was read.
    manifest_secrets = models.JSONField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    enqueued = models.DateTimeField(null=True, blank=True)
    # Stamped every few seconds by the process running it (deployments/heartbeat.py).
    heartbeat = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["app", "status"]),
            # An app's newest deploys without a sort: its page's history and the apps list's
            # "latest deploy" (one lookup per app instead of sorting all its deploys).
            models.Index(fields=["app", "-created", "-id"], name="deploy_app_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.app.name} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def short_commit(self) -> str:
        return self.commit[:12]

    @property
    def commit_subject(self) -> str:
        """The first line of the commit message (the rest is its body)."""
        return self.commit_message.split("\n", 1)[0]

    def _move(self, to: str, *, allowed: tuple[str, ...], **fields) -> bool:
        """Guarded, atomic status change: only from `allowed`, so a finished deploy stays so."""
        if to in self.FINISHED:
            fields.setdefault("finished", timezone.now())
        n = Deploy.objects.filter(pk=self.pk, status__in=allowed).update(status=to, **fields)
        self.refresh_from_db()
        return n == 1

    def start_stage(self, stage: str, status: str | None = None) -> bool:
        stages = dict(self.stages)
        stages[stage] = {"started": timezone.now().isoformat()}
        fields: dict[str, Any] = {"stages": stages}
        if self.started is None:
            fields["started"] = timezone.now()
        return self._move(status or self.status, allowed=self.PENDING, **fields)

    def finish_stage(self, stage: str) -> None:
        stages = dict(self.stages)
        stages.setdefault(stage, {})["finished"] = timezone.now().isoformat()
        Deploy.objects.filter(pk=self.pk).update(stages=stages)
        self.stages = stages

    def stage_seconds(self) -> dict[str, float]:
        from datetime import datetime

        out = {}
        for name, s in self.stages.items():
            if "started" in s and "finished" in s:
                a = datetime.fromisoformat(s["started"])
                b = datetime.fromisoformat(s["finished"])
                out[name] = round((b - a).total_seconds(), 2)
        return out

    def mark_live(self) -> bool:
        return self._move(self.Status.LIVE, allowed=self.ACTIVE, error="")

    def mark_failed(self, reason: str) -> bool:
        return self._move(self.Status.FAILED, allowed=self.PENDING, error=reason[:4000])

    def mark_superseded(self, by: Deploy, reason: str = "") -> bool:
        """Queued, and `by` was queued after it. With a `reason`: found stale by its own
        clone (its commit is already live or older, or `by` carries a newer one), so it may
        also be building then: the clone stage, before anything is built."""
        allowed = (self.Status.QUEUED, self.Status.BUILDING) if reason else (self.Status.QUEUED,)
        return self._move(
            self.Status.SUPERSEDED,
            allowed=allowed,
            error=(reason or f"superseded by deploy #{by.pk}")[:4000],
        )

    def mark_cancelled(self, *, queued_only: bool = False) -> bool:
        """`queued_only`: a deploy the worker has started meanwhile stays as it is."""
        allowed = (self.Status.QUEUED,) if queued_only else self.PENDING
        return self._move(self.Status.CANCELLED, allowed=allowed, error="cancelled by a user")

    def mark_retired(self) -> bool:
        # `finished` keeps the moment it went live: rollback history is ordered by it.
        return self._move(
            self.Status.RETIRED, allowed=(self.Status.LIVE,), finished=models.F("finished")
        )

    @property
    def log_text(self) -> str:
        return "\n".join(self.log_lines.values_list("text", flat=True))


class LogLine(models.Model):
    """One line of a deploy's log, numbered so a reconnecting viewer resumes without gaps."""

    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    text = models.TextField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["deploy", "seq"]
        constraints = [models.UniqueConstraint(fields=["deploy", "seq"], name="uniq_log_seq")]

    def __str__(self) -> str:
        return f"#{self.deploy_id}:{self.seq}"


class PruneRun(models.Model):
    """One run of `prune` (by hand or the daily one): what it removed and what it freed."""

    started = models.DateTimeField(default=timezone.now)
    dry_run = models.BooleanField(default=False)
    images_deleted = models.PositiveIntegerField(default=0)
    freed_bytes = models.BigIntegerField(default=0)
    summary = models.TextField(blank=True)

    class Meta:
        ordering = ["-started"]

    def __str__(self) -> str:
        return f"prune {self.started:%Y-%m-%d %H:%M} ({self.images_deleted} images)"
