from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps import services
from apps.cli import get_app


class Command(BaseCommand):
    help = (
        "Remove plain runtime env vars of an app (set_env); the manifest's env value of that "
        "name, if any, applies again. Applied on the next deploy or redeploy."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("keys", nargs="+", metavar="KEY")

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        try:
            app = services.app_env_unset(app=app, keys=opts["keys"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        for key in opts["keys"]:
            self.stdout.write(f"unset {key}")
        self.stdout.write(
            f"env vars of {app.name}: {', '.join(sorted(app.env)) or '-'}; applied on the next "
            f"deploy or redeploy (python manage.py redeploy {app.name})"
        )
