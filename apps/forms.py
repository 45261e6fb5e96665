from __future__ import annotations

from django import forms

from apps.models import App


class AppForm(forms.Form):
    name = forms.CharField(max_length=39, help_text="lowercase letters, digits and -")
    repo_url = forms.CharField(label="Repository URL", max_length=500)
    branch = forms.CharField(max_length=200, initial="main")
    trigger = forms.ChoiceField(choices=App.TRIGGER_CHOICES, initial=App.TRIGGER_PUSH)
    domains = forms.CharField(required=False, help_text="space- or comma-separated host names")

    def clean_domains(self) -> list[str]:
        raw = self.cleaned_data.get("domains") or ""
        return [d for d in raw.replace(",", " ").split() if d]


class AppSettingsForm(forms.Form):
    """The app page's settings panel; apps.services.app_update validates the values."""

    branch = forms.CharField(max_length=200)
    trigger = forms.ChoiceField(choices=App.TRIGGER_CHOICES)
    workflows = forms.CharField(required=False, max_length=4000, widget=forms.Textarea)
    domains = forms.CharField(required=False, max_length=30000)

    def clean_workflows(self) -> list[str]:
        # One per line: a workflow's name may hold spaces and commas.
        raw = self.cleaned_data.get("workflows") or ""
        return [line for line in raw.splitlines() if line.strip()]

    def clean_domains(self) -> list[str]:
        raw = self.cleaned_data.get("domains") or ""
        return [d for d in raw.replace(",", " ").split() if d]


class EnvForm(forms.Form):
    """One plain env var of the settings page; apps.services.app_env_set validates it."""

    key = forms.CharField(label="Name", max_length=128, strip=False)
    # Not stripped, may be empty: an env value is exactly what the user typed.
    value = forms.CharField(label="Value", required=False, strip=False, max_length=40000)


class DeleteAppForm(forms.Form):
    """The typed confirmation of deleting an app: its name, exactly."""

    confirm = forms.CharField(label="Type the app's name to confirm", max_length=100, strip=False)
