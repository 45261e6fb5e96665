"""What the management commands of every part share: an app found by its name, or a
CommandError that says how to find the right one."""

from __future__ import annotations

from django.core.management.base import CommandError

from apps import validators
from apps.models import App


def get_app(name: str) -> App:
    # A name no app can have is not looked up (PostgreSQL errors on a NUL in a query).
    valid = validators.matches(validators.APP_NAME_RE, name)
    app = App.objects.filter(name=name).first() if valid else None
    if app is None:
        raise CommandError(
            f"No app named {validators.quote(name)}. List them with the admin or create_app."
        )
    return app
