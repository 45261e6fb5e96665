"""What the management commands of every part share: an app found by its name, or a
CommandError that says how to find the right one."""

from __future__ import annotations

from django.core.management.base import CommandError

from apps.models import App


def get_app(name: str) -> App:
    app = App.objects.filter(name=name).first()
    if app is None:
        raise CommandError(f"No app named {name!r}. List them with the admin or create_app.")
    return app
