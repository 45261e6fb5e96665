from __future__ import annotations

from django.db import models
from django.utils import timezone

from apps.models import App
from apps.validators import validate_secret_key


class Secret(models.Model):
    """A runtime secret of an app. Only the Fernet token is stored; no plaintext column exists."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="secrets")
    key = models.CharField(max_length=128, validators=[validate_secret_key])
    token = models.TextField(editable=False)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["app", "key"]
        constraints = [models.UniqueConstraint(fields=["app", "key"], name="uniq_app_secret")]

    def __str__(self) -> str:
        return f"{self.app.name}:{self.key}"
