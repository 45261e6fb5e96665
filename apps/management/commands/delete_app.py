from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.cli import get_app
from deployments import teardown


class Command(BaseCommand):
    help = (
        "Remove the app's Swarm service, Swarm secrets, routes and images, then the app. "
        "Without --yes, say what that would remove and change nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--yes", action="store_true", help="really delete")

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        try:
            teardown.app_delete(app=app, dry_run=not opts["yes"], say=self.stdout.write)
        except teardown.TeardownError as exc:
            raise CommandError(str(exc)) from None
        if not opts["yes"]:
            self.stdout.write(f"nothing changed: run delete_app {app.name} --yes to delete it")
