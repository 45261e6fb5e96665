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
