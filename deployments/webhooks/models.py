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

    # GitHub's X-GitHub-Delivery; blank only for refused requests that carried none.
    delivery_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
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

    def __str__(self) -> str:
        return f"{self.event} {self.outcome} ({self.delivery_id or 'no id'})"
