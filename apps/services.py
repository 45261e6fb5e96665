from __future__ import annotations

import secrets as pysecrets

from django.core.exceptions import ValidationError
from django.db import transaction

from apps import validators
from apps.models import App
from secrets_vault import crypto


def _webhook_secret() -> str:
    return pysecrets.token_hex(32)  # 32 random bytes


@transaction.atomic
def app_create(
    *,
    name: str,
    repo_url: str,
    branch: str = "main",
    trigger: str = App.TRIGGER_PUSH,
    domains: list[str] | None = None,
    owner=None,
) -> tuple[App, str]:
    """A new app and its webhook secret in clear (shown once; only its token is stored)."""
    domains = [d.strip().lower() for d in (domains or []) if d.strip()]
    for d in domains:
        validators.validate_domain(d)
    if len(set(domains)) != len(domains):
        raise ValidationError("A domain is listed twice.")
    if trigger not in dict(App.TRIGGER_CHOICES):
        raise ValidationError(f"Trigger {trigger!r} is not one of: push, workflow_run.")
    taken = app_domain_owners(exclude=name)
    clash = [d for d in domains if d in taken]
    if clash:
        raise ValidationError(
            f"Domain {clash[0]} already routes to the app {taken[clash[0]]!r}; one host name "
            "can serve one app."
        )
    if App.objects.filter(name=name).exists():
        raise ValidationError(f"An app named {name!r} already exists; choose another name.")
    secret = _webhook_secret()
    app = App(
        name=name,
        repo_url=repo_url,
        branch=branch,
        trigger=trigger,
        domains=domains,
        owner=owner,
        webhook_secret_token=crypto.encrypt(secret),
    )
    app.full_clean(exclude=["webhook_secret_token"])
    app.save()
    return app, secret


def app_domain_owners(*, exclude: str = "") -> dict[str, str]:
    """Host name -> the app it is configured for (App.domains), except app `exclude`."""
    return {d: a.name for a in App.objects.exclude(name=exclude) for d in a.domains}


def app_regenerate_webhook_secret(*, app: App) -> str:
    secret = _webhook_secret()
    app.webhook_secret_token = crypto.encrypt(secret)
    app.save(update_fields=["webhook_secret_token"])
    return secret


def app_webhook_secret(*, app: App) -> str:
    return crypto.decrypt(app.webhook_secret_token)


def app_webhook_url(*, app: App) -> str:
    from django.conf import settings

    return f"{settings.KOYRA_BASE_URL}/webhooks/github/{app.name}/"
