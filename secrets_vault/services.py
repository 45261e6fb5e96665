from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.models import App
from apps.validators import validate_secret_key
from secrets_vault import crypto
from secrets_vault.models import Secret


def secret_set(*, app: App, key: str, value: str) -> Secret:
    validate_secret_key(key)
    if value == "":
        raise ValidationError(f"The value for {key} is empty; give a value (read from stdin).")
    token = crypto.encrypt(value)
    secret, _ = Secret.objects.update_or_create(
        app=app, key=key, defaults={"token": token, "updated": timezone.now()}
    )
    return secret


def secret_delete(*, app: App, key: str) -> bool:
    return Secret.objects.filter(app=app, key=key).delete()[0] > 0


def secret_values(*, app: App, keys: list[str] | None = None) -> dict[str, str]:
    """Clear values of the app's secrets (all, or `keys`). Raises VaultError when one does not
    decrypt, and ValidationError naming any of `keys` that has no value set."""
    qs = Secret.objects.filter(app=app)
    if keys is not None:
        qs = qs.filter(key__in=keys)
        missing = sorted(set(keys) - set(qs.values_list("key", flat=True)))
        if missing:
            raise ValidationError(
                f"The manifest needs secret(s) with no value set: {', '.join(missing)}. "
                f"Set each with: python manage.py set_secret {app.name} KEY (value on stdin)."
            )
    return {s.key: crypto.decrypt(s.token) for s in qs}
