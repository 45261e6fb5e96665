from __future__ import annotations

from django import forms

from apps.validators import validate_repo_token, validate_secret_key


class SecretForm(forms.Form):
    """Write-only: a value goes in and is never rendered back, not even after an error."""

    key = forms.CharField(
        label="Name",
        max_length=128,
        validators=[validate_secret_key],
        widget=forms.TextInput(attrs={"placeholder": "e.g. DATABASE_URL", "autocomplete": "off"}),
    )
    value = forms.CharField(
        max_length=65536,
        strip=False,  # stored exactly as typed
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password", "spellcheck": "false"}
        ),
        help_text="Write-only: never shown again. Redeploy to apply.",
    )


class RepoTokenForm(forms.Form):
    """Write-only: the token goes in and is never rendered back, not even after an error."""

    token = forms.CharField(
        label="HTTPS token",
        max_length=1024,
        validators=[validate_repo_token],
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password", "spellcheck": "false"}
        ),
        help_text="Write-only: never shown again. A fine-grained token with read access to "
        "the repository's Contents.",
    )
