from __future__ import annotations

from django.contrib import admin

from secrets_vault.models import Secret


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    """Names and times only: values are write-only (set_secret or the app page)."""

    list_display = ("app", "key", "updated")
    search_fields = ("app__name", "key")
    fields = ("app", "key", "updated")
    readonly_fields = ("app", "key", "updated")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
