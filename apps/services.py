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
    workflows: list[str] | None = None,
    owner=None,
) -> tuple[App, str]:
    """A new app and its webhook secret in clear (shown once; only its token is stored)."""
    # Before any query uses it: a NUL in a name is a DataError on PostgreSQL, not a message.
    validators.validate_app_name(name)
    domains, workflows = _settings(
        name=name, trigger=trigger, domains=domains or [], workflows=workflows or []
    )
    if App.objects.filter(name=name).exists():
        raise ValidationError(f"An app named {name} already exists; choose another name.")
    secret = _webhook_secret()
    app = App(
        name=name,
        repo_url=repo_url,
        branch=branch,
        trigger=trigger,
        domains=domains,
        workflows=workflows,
        owner=owner,
        webhook_secret_token=crypto.encrypt(secret),
    )
    app.full_clean(exclude=["webhook_secret_token"])
    app.save()
    return app, secret


@transaction.atomic
def app_update(
    *,
    app: App,
    branch: str | None = None,
    trigger: str | None = None,
    workflows: list[str] | None = None,
    domains: list[str] | None = None,
) -> App:
    """Change an app's settings (None: as it is) with app_create's validation; all of them
    or, when one is refused, none. Applies to the next delivery; domains to the next deploy."""
    app = App.objects.select_for_update().get(pk=app.pk)
    trigger = app.trigger if trigger is None else trigger
    app.domains, app.workflows = _settings(
        name=app.name,
        trigger=trigger,
        domains=app.domains if domains is None else domains,
        workflows=app.workflows if workflows is None else workflows,
    )
    app.trigger = trigger
    app.branch = app.branch if branch is None else branch
    app.full_clean(exclude=["webhook_secret_token"])
    app.save(update_fields=["branch", "trigger", "domains", "workflows"])
    return app


def _settings(
    *, name: str, trigger: str, domains: list[str], workflows: list[str]
) -> tuple[list[str], list[str]]:
    """The domains and workflows as stored, once the settings create and update share pass."""
    # Spaces around a name are dropped and ASCII is lowercased; nothing else is altered (a
    # newline, a look-alike letter) but refused by the validator.
    domains = [_host(d) for d in domains if d.strip(" ")]
    validators.validate_domain_list(domains)
    for host in domains:
        validators.validate_domain_not_reserved(host)
    workflows = [w.strip(" ") for w in workflows if w.strip(" ")]
    validators.validate_workflows(workflows)
    if trigger not in dict(App.TRIGGER_CHOICES):
        raise ValidationError(f"Trigger {trigger!r} is not one of: push, workflow_run.")
    validators.validate_workflows_trigger(workflows, trigger)
    taken = app_domain_owners(exclude=name)
    clash = [d for d in domains if d in taken]
    if clash:
        raise ValidationError(
            f"Domain {clash[0]} already routes to the app {taken[clash[0]]!r}; one host name "
            "can serve one app."
        )
    return domains, workflows


def _host(value: str) -> str:
    value = value.strip(" ")
    return value.lower() if value.isascii() else value


def app_domain_owners(*, exclude: str = "") -> dict[str, str]:
    """Host name -> the app it is configured for (App.domains), except app `exclude`. A row
    saved before domains were validated (not a list) claims nothing rather than break pages."""
    return App.domain_owners(exclude=exclude)


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
