from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.models import App
from apps.validators import validate_secret_key, validate_secret_value
from secrets_vault import crypto
from secrets_vault.models import RepoAccess, Secret


def secret_set(*, app: App, key: str, value: str) -> Secret:
    validate_secret_key(key)
    if value == "":
        raise ValidationError(f"The value for {key} is empty; give a value (read from stdin).")
    validate_secret_value(key, value)
    token = crypto.encrypt(value)
    secret, _ = Secret.objects.update_or_create(
        app=app, key=key, defaults={"token": token, "updated": timezone.now()}
    )
    return secret


def secret_delete(*, app: App, key: str) -> bool:
    return Secret.objects.filter(app=app, key=key).delete()[0] > 0


def secret_values(*, app: App, keys: list[str] | None = None) -> dict[str, str]:
    """Clear values of the app's secrets (all, or `keys`). Raises VaultError naming the secret
    that does not decrypt, and ValidationError naming any of `keys` that has no value set."""
    qs = Secret.objects.filter(app=app)
    if keys is not None:
        qs = qs.filter(key__in=keys)
        secrets_require(app=app, keys=keys, present=qs.values_list("key", flat=True))
    return {s.key: _decrypt(app, s) for s in qs}


def secrets_require(*, app: App, keys: Iterable[str], present: Iterable[str]) -> None:
    """ValidationError naming each of `keys` that is not among the `present` secret names."""
    missing = sorted(set(keys) - set(present))
    if missing:
        raise ValidationError(
            f"The manifest needs secret(s) with no value set: {', '.join(missing)}. "
            f"Set each on the app's page under Secrets (/apps/{app.name}/#secrets), or with: "
            f"python manage.py set_secret {app.name} KEY (value on stdin)."
        )


def _decrypt(app: App, secret: Secret) -> str:
    try:
        return crypto.decrypt(secret.token)
    except crypto.VaultError:
        raise crypto.VaultError(
            f"Secret {secret.key} of {app.name} {crypto.NOT_DECRYPTABLE}. Put the key it was "
            f"made with back in KOYRA_FERNET_KEYS, or set it again: "
            f"python manage.py set_secret {app.name} {secret.key}"
        ) from None


# --- Key rotation ----------------------------------------------------------------------------


@dataclass
class RotateResult:
    secrets: int = 0
    webhook_secrets: int = 0
    repo_credentials: int = 0  # deploy keys and HTTPS tokens (secrets_vault.repo_access)
    # "<app>: <what>" of every row no configured key opens; each was left exactly as it was.
    failed: list[str] = field(default_factory=list)


def secrets_rotate() -> RotateResult:
    """Re-encrypt every Secret, every app's webhook secret and repository credentials (deploy
    key, HTTPS token) under the first key.

    Row by row, each a compare-and-swap of its own: an interrupted run leaves each row under
    either its old key or the first one (both still configured), so running it again finishes
    the job; a row changed meanwhile (set_secret) already uses the first key and is left alone.
    A row no key opens is reported and skipped, never lost or overwritten."""
    crypto.ensure_keys()
    result = RotateResult()
    for pk, app_name, key, token in Secret.objects.values_list(
        "pk", "app__name", "key", "token"
    ).order_by("pk"):
        if _rotate_row(Secret, pk, "token", token):
            result.secrets += 1
        else:
            result.failed.append(f"{app_name}: secret {key}")
    for pk, app_name, token in App.objects.values_list(
        "pk", "name", "webhook_secret_token"
    ).order_by("pk"):
        if _rotate_row(App, pk, "webhook_secret_token", token):
            result.webhook_secrets += 1
        else:
            result.failed.append(f"{app_name}: webhook secret")
    for pk, app_name, key_token, https_token in RepoAccess.objects.values_list(
        "pk", "app__name", "deploy_key_token", "https_token"
    ).order_by("pk"):
        for column, token, what in (
            ("deploy_key_token", key_token, "deploy key"),
            ("https_token", https_token, "repository token"),
        ):
            if token and _rotate_row(RepoAccess, pk, column, token):
                result.repo_credentials += 1
            elif token:
                result.failed.append(f"{app_name}: {what}")
    return result


def _rotate_row(model, pk: int, column: str, token: str) -> bool:
    """False when no configured key opens the token (the row is left untouched)."""
    try:
        new = crypto.rotate(token)
    except crypto.VaultError:
        return False
    with transaction.atomic():
        # Only if the row still holds the token just read: never undo a concurrent change.
        model.objects.filter(pk=pk, **{column: token}).update(**{column: new})
    return True
