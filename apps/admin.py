from __future__ import annotations

from django.contrib import admin, messages

from apps import services
from apps.models import App


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    list_display = ("name", "repo_url", "branch", "trigger", "owner", "created")
    search_fields = ("name", "repo_url")
    list_filter = ("trigger",)
    filter_horizontal = ("members",)
    # The webhook secret is a Fernet token and never shown; a new one is shown once on create.
    fields = ("name", "repo_url", "branch", "trigger", "workflows", "domains", "owner", "members")

    def get_readonly_fields(self, request, obj=None):
        return ("name",) if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        obj.webhook_secret_token = "pending"
        super().save_model(request, obj, form, change)
        secret = services.app_regenerate_webhook_secret(app=obj)
        messages.warning(
            request,
            f"Webhook URL: {services.app_webhook_url(app=obj)} - webhook secret (shown only "
            f"now): {secret}",
        )
