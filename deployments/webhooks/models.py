from __future__ import annotations

from django.db import models
from django.utils import timezone

from apps.models import App
from deployments.models import Deploy


class WebhookDelivery(models.Model):
    ACCEPTED = "accepted"
    IGNORED = "ignored"
    REFUSED = "refused"
    DUPLICATE = "duplicate"
    OUTCOMES = [(o, o) for o in (ACCEPTED, IGNORED, REFUSED, DUPLICATE)]

    # GitHub's X-GitHub-Delivery; blank for requests that carried none, and for duplicates
    # (whose reason names it). One delivery id queues at most one deploy (the constraint
    # below); an ignored or refused one is judged again when GitHub redelivers it. NULL, not
    # "", for "none": what the rows recorded while the column was unique hold.
    delivery_id = models.CharField(  # noqa: DJ001
        max_length=100, null=True, blank=True, db_index=True
    )
    app = models.ForeignKey(App, null=True, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=50, blank=True)
    commit = models.CharField(max_length=40, blank=True)
    outcome = models.CharField(max_length=20, choices=OUTCOMES)
    reason = models.CharField(max_length=500, blank=True)
    deploy = models.ForeignKey(Deploy, null=True, blank=True, on_delete=models.SET_NULL)
    received = models.DateTimeField(default=timezone.now)

    class Meta:
        # The table it had in `deployments`, kept: moving the model renamed nothing in the
        # database. A rename would leave PostgreSQL's index names on the old table name,
        # where a later AlterField (which derives them from the table name) would miss them.
        db_table = "deployments_webhookdelivery"
        ordering = ["-received", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # Conditional, so redeliveries of an ignored or refused delivery are each listed,
            # while concurrent redeliveries of an accepted one cannot queue a second deploy
            # (a partial unique index: SQLite and PostgreSQL both have them).
            models.UniqueConstraint(
                fields=["delivery_id"],
                condition=models.Q(outcome="accepted"),
                name="uniq_accepted_delivery",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.outcome} ({self.delivery_id or 'no id'})"


class WorkflowPass(models.Model):
    """A workflow that succeeded for a commit of an app: what the app's `workflows` setting
    waits for before the commit deploys (one row per app, commit and workflow)."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="workflow_passes")
    commit = models.CharField(max_length=40)
    workflow = models.CharField(max_length=100)
    received = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["app", "commit", "workflow"], name="uniq_workflow_pass")
        ]

    def __str__(self) -> str:
        return f"{self.workflow} passed {self.commit[:12]}"


class RefusedDeliveries(models.Model):
    """How many requests to an app's webhook URL were refused before anything was recorded
    (bad signature, over-large body, undecryptable secret): one row per app, updated in
    place, never a row per request (anyone can send them) and never a body or header beyond
    the event name and delivery id (both checked, both short). It explains a webhook that
    "does nothing" when the secret in GitHub is wrong. `count` counts the refusals since
    `since`, a window restarted once it is a day old, so every one counted is a day old at
    most."""

    SIGNATURE = "signature"
    TOO_LARGE = "too_large"
    SECRET = "secret"
    REASONS = [
        (SIGNATURE, "bad signature"),
        (TOO_LARGE, "body too large"),
        (SECRET, "secret not decryptable"),
    ]

    app = models.OneToOneField(
        App, primary_key=True, on_delete=models.CASCADE, related_name="refused_deliveries"
    )
    count = models.PositiveIntegerField(default=0)
    since = models.DateTimeField(default=timezone.now)
    last = models.DateTimeField(default=timezone.now)
    last_reason = models.CharField(max_length=20, choices=REASONS)
    last_event = models.CharField(max_length=50, blank=True)
    last_delivery_id = models.CharField(max_length=100, blank=True)

    class Meta:
        verbose_name_plural = "refused deliveries"

    def __str__(self) -> str:
        return f"{self.count} refused since {self.since:%Y-%m-%d %H:%M}"
