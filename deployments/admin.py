from __future__ import annotations

from django.contrib import admin

from deployments.models import Deploy, Image


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the pipeline: the admin shows them, it does not edit them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Deploy)
class DeployAdmin(ReadOnlyAdmin):
    list_display = ("id", "app", "status", "short_commit", "trigger", "created", "finished")
    list_filter = ("status", "trigger")
    search_fields = ("app__name", "commit")
    exclude = ("spec",)
    readonly_fields = ("log",)

    @admin.display(description="log")
    def log(self, obj):
        return obj.log_text


@admin.register(Image)
class ImageAdmin(ReadOnlyAdmin):
    list_display = ("app", "ref", "digest", "size", "created", "deleted")
    search_fields = ("app__name", "commit", "digest")
