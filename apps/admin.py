from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse

from apps.models import App, Membership

# The services an admin action calls are imported in it: every process loads this module
# (Django's admin autodiscovery), and the worker, which never runs an admin action, would
# otherwise keep the docker SDK and cryptography in memory for them (BENCHMARKS.md, footprint).


class MembershipInline(admin.TabularInline):
    """Roles on the app (apps.access): viewer, deployer, admin. The owner is admin without a
    row. Staff who are not superusers see and change this only with the Membership model's
    own permissions."""

    model = Membership
    extra = 0


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    list_display = ("name", "repo_url", "branch", "trigger", "owner", "created")
    search_fields = ("name", "repo_url")
    list_filter = ("trigger",)
    inlines = (MembershipInline,)
    # The webhook secret is a Fernet token and never shown; a new one is shown once on create.
    fields = ("name", "repo_url", "branch", "trigger", "workflows", "domains", "owner")

    # Deleting an app tears down what it runs first (deployments.teardown), like delete_app:
    # when that fails the row stays, with the error, so its name and domains stay taken.
    def delete_model(self, request, obj):
        self._teardown(request, [obj])

    def delete_queryset(self, request, queryset):
        self._teardown(request, list(queryset))

    def log_deletions(self, request, queryset):
        pass  # logged by _teardown, for the apps really deleted

    def _teardown(self, request, apps):
        from deployments import teardown

        request.koyra_kept = kept = []
        for app in apps:
            try:
                teardown.app_delete(app=app, wait=10)
            except teardown.TeardownError as exc:
                kept.append(app.name)
                messages.error(request, str(exc))
            else:
                super().log_deletions(request, [app])  # type: ignore[arg-type]  # iterated
        if kept and len(apps) > 1:
            messages.warning(request, f"Not deleted: {', '.join(kept)} (see above).")

    def message_user(self, request, message, level=messages.INFO, *args, **kwargs):
        if level == messages.SUCCESS and getattr(request, "koyra_kept", None):
            return  # "Successfully deleted N apps" would count the kept ones too
        super().message_user(request, message, level, *args, **kwargs)

    def response_delete(self, request, obj_display, obj_id):
        if getattr(request, "koyra_kept", None):
            return HttpResponseRedirect(reverse("admin:apps_app_change", args=[obj_id]))
        return super().response_delete(request, obj_display, obj_id)

    def get_readonly_fields(self, request, obj=None):
        # Ownership makes its holder the app's admin on the dashboard: only a superuser hands
        # it out here, so `change_app` alone cannot make its holder an app's owner.
        owner = () if request.user.is_superuser else ("owner",)
        return (("name",) if obj else ()) + owner

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        if not request.user.is_superuser:
            obj.owner = request.user  # like the dashboard: who creates an app owns it
        obj.webhook_secret_token = "pending"
        super().save_model(request, obj, form, change)
        from apps import services

        secret = services.app_regenerate_webhook_secret(app=obj)
        messages.warning(
            request,
            f"Webhook URL: {services.app_webhook_url(app=obj)} - webhook secret (shown only "
            f"now): {secret}",
        )
