from __future__ import annotations

from django.contrib import admin

from deployments.admin import ReadOnlyAdmin
from deployments.webhooks.models import RefusedDeliveries, WebhookDelivery, WorkflowPass


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("received", "app", "event", "outcome", "reason", "commit", "delivery_id")
    list_filter = ("outcome", "event")
    search_fields = ("app__name", "delivery_id", "commit")


@admin.register(WorkflowPass)
class WorkflowPassAdmin(ReadOnlyAdmin):
    list_display = ("received", "app", "workflow", "commit")
    search_fields = ("app__name", "workflow", "commit")


@admin.register(RefusedDeliveries)
class RefusedDeliveriesAdmin(ReadOnlyAdmin):
    list_display = ("app", "count", "since", "last", "last_reason", "last_event")
    search_fields = ("app__name",)
