from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps import access
from apps.models import App


def app_and_user(name: str, username: str):
    """The app and the user the arguments name, or a CommandError naming the missing one."""
    app = App.objects.filter(name=name).first()
    if app is None:
        raise CommandError(f"No app named {name!r}.")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user named {username!r} (create it in the admin first).")
    return app, user


class Command(BaseCommand):
    help = (
        "Take every role on the app NAME from USERNAME (their membership, and the ownership "
        "if they own it). Their open log streams close within seconds."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("username")

    def handle(self, *args, **opts):
        app, user = app_and_user(opts["name"], opts["username"])
        if access.revoke(app=app, user=user):
            self.stdout.write(f"{user.username} has no role on {app.name} any more.")
        else:
            self.stdout.write(f"{user.username} had no role on {app.name}: nothing changed.")
        if user.is_superuser:
            self.stdout.write(f"{user.username} is a superuser and still may everything.")
