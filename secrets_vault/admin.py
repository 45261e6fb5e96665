from __future__ import annotations

from django import forms
from django.contrib import admin

from apps.validators import validate_repo_token
from secrets_vault.models import RepoAccess, Secret


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


class RepoAccessForm(forms.ModelForm):
    """Write-only, like the app page: a token goes in and is never rendered back; a deploy
    key is made here, and only its public half is ever shown."""

    new_token = forms.CharField(
        label="New HTTPS token",
        required=False,
        max_length=1024,
        validators=[validate_repo_token],
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: replaces the app's token. Leave empty to keep it.",
    )
    make_deploy_key = forms.BooleanField(
        label="Make a new deploy key",
        required=False,
        help_text="The old key stops working: add the new public key to the repository.",
    )
    clear_token = forms.BooleanField(label="Remove the HTTPS token", required=False)

    class Meta:
        model = RepoAccess
        fields = ("app",)


@admin.register(RepoAccess)
class RepoAccessAdmin(admin.ModelAdmin):
    """The public deploy key and dates only; credentials change through repo_access."""

    form = RepoAccessForm
    list_display = ("app", "deploy_key_updated", "token_set", "https_token_updated")
    search_fields = ("app__name",)
    readonly_fields = (
        "deploy_key_public",
        "deploy_key_updated",
        "token_set",
        "https_token_updated",
    )

    @admin.display(boolean=True, description="HTTPS token set")
    def token_set(self, obj: RepoAccess) -> bool:
        return obj.has_token

    def get_readonly_fields(self, request, obj=None):
        return ("app", *self.readonly_fields) if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        # Never obj.save() on a change: it would write back the row as loaded, over what the
        # services below store.
        if not change:
            obj.save()
        from secrets_vault import repo_access  # here, not above: see apps/admin.py

        data = form.cleaned_data
        if data["make_deploy_key"]:
            repo_access.deploy_key_make(app=obj.app, rotate=True)
        if data["new_token"]:
            repo_access.repo_token_set(app=obj.app, token=data["new_token"])
        elif data["clear_token"]:
            repo_access.repo_token_clear(app=obj.app)
        obj.refresh_from_db()
