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


class RepoAccess(models.Model):
    """The app's own credentials for its repository (SPEC §6 deploy_key, set_repo_token): a
    deploy key and/or an HTTPS token. The private key and the token are stored only as Fernet
    tokens, write-only like secrets; the public key is not secret and is shown to be pasted
    into the repository's Deploy keys."""

    app = models.OneToOneField(App, on_delete=models.CASCADE, related_name="repo_access")
    deploy_key_public = models.TextField(blank=True, editable=False)
    deploy_key_token = models.TextField(blank=True, editable=False)
    deploy_key_updated = models.DateTimeField(null=True, blank=True, editable=False)
    https_token = models.TextField(blank=True, editable=False)
    https_token_updated = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name_plural = "repository access"

    def __str__(self) -> str:
        return f"{self.app.name}: repository access"

    @property
    def has_token(self) -> bool:
        return bool(self.https_token)
