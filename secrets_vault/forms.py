from __future__ import annotations

from django import forms

from apps.validators import validate_secret_key


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
