from __future__ import annotations

import ipaddress
import secrets as pysecrets
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction

from apps import validators
from apps.models import App
from deployments import selectors
from secrets_vault import crypto
from secrets_vault.models import Secret


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


@transaction.atomic
def app_env_set(*, app: App, values: dict[str, str]) -> App:
    """Set plain env vars (not secret) on the app, all of them or, when one is refused, none.
    They are merged over the manifest's `env` by the next deploy, redeploy or rollback. A
    name that is a secret of the app (a stored one, or one the live release's manifest
    needs) is refused: a name is either secret or plain, never both."""
    if not values:
        raise ValidationError("Nothing to set: give one or more KEY=VALUE.")
    for key, value in values.items():
        validators.validate_env_key(key)
        validators.validate_env_value(key, value)
    app = App.objects.select_for_update().get(pk=app.pk)
    clash = sorted(set(values) & app_secret_names(app=app))
    if clash:
        raise ValidationError(
            f"{clash[0]} is a secret of {app.name}; a plain env var cannot share its name "
            "(it would be stored and shown in clear): keep it a secret (set_secret), or "
            "choose another name."
        )
    env = {**app.env, **values}
    validators.validate_env(env)
    app.env = env
    app.save(update_fields=["env"])
    return app


@transaction.atomic
def app_env_unset(*, app: App, keys: list[str]) -> App:
    """Remove plain env vars from the app: all the named ones, or none when one is not set.
    The manifest's `env` value of that name (if any) applies again on the next deploy."""
    if not keys:
        raise ValidationError("Nothing to unset: give one or more KEY.")
    for key in keys:
        validators.validate_env_key(key)
    app = App.objects.select_for_update().get(pk=app.pk)
    missing = [k for k in keys if k not in app.env]
    if missing:
        have = ", ".join(sorted(app.env)) or "none"
        raise ValidationError(
            f"{missing[0]} is not an env var of {app.name} (its env vars: {have}); nothing "
            "was removed."
        )
    app.env = {k: v for k, v in app.env.items() if k not in keys}
    app.save(update_fields=["env"])
    return app


def app_secret_names(*, app: App) -> set[str]:
    """The names that are secrets of the app: stored ones and the live release's manifest's."""
    return app_secrets_stored(app=app) | set(app_secrets_needed(app=app))


def app_secrets_stored(*, app: App) -> set[str]:
    return set(Secret.objects.filter(app=app).values_list("key", flat=True))


def app_secrets_needed(*, app: App) -> list[str]:
    """The secret names the newest manifest read and the live release list (selectors)."""
    return selectors.manifest_secrets(app)


def app_secret_rows(*, app: App) -> list[dict]:
    """The app's secrets as its page lists them: each name the manifest needs, set or missing,
    then the stored ones no manifest lists. Names and dates only, never a token."""
    stored = dict(Secret.objects.filter(app=app).values_list("key", "updated"))
    needed = app_secrets_needed(app=app)
    rows = [{"key": k, "needed": True, "updated": stored.get(k)} for k in needed]
    rows += [
        {"key": k, "needed": False, "updated": stored[k]} for k in sorted(stored) if k not in needed
    ]
    return rows


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


# Names that only resolve inside a machine or a private network (no DNS lookup is made).
_PRIVATE_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".lan", ".home.arpa")


def app_webhook_url_warning(*, url: str) -> str:
    """Why GitHub cannot deliver to the payload `url` (KOYRA_BASE_URL's host is a loopback or
    private address, or a name only a private network resolves), or "" when it may."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    try:
        private = not ipaddress.ip_address(host).is_global
    except ValueError:  # a name, not an address
        private = host == "localhost" or host.endswith(_PRIVATE_SUFFIXES) or "." not in host
    if not private:
        return ""
    return (
        f"{host or 'This host'} is a loopback or private address: GitHub cannot deliver to "
        "this URL. Set KOYRA_BASE_URL to the public address Koyra is reached at (for example "
        "https://koyra.example.com) and restart Koyra; the payload URL follows it."
    )
