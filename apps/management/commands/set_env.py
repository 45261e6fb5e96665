from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps import services, validators
from apps.cli import get_app


class Command(BaseCommand):
    help = (
        "Set plain runtime env vars (not secret: stored and shown in clear) of an app, merged "
        "over the manifest's env; applied on the next deploy or redeploy. All of them, or none "
        "when one is refused. Use set_secret for anything secret."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("pairs", nargs="+", metavar="KEY=VALUE")

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        values: dict[str, str] = {}
        for pair in opts["pairs"]:
            key, sep, value = pair.partition("=")
            if not sep:
                raise CommandError(
                    f"{validators.quote(pair)} is not KEY=VALUE: give each variable as "
                    "KEY=VALUE (KEY= sets an empty value)."
                )
            if key in values:
                raise CommandError(f"{validators.quote(key)} is given twice: give it once.")
            values[key] = value
        try:
            app = services.app_env_set(app=app, values=values)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        for key in values:
            self.stdout.write(f"set {key}")
        self.stdout.write(
            f"env vars of {app.name}: {', '.join(sorted(app.env))}; applied on the next deploy "
            f"or redeploy (python manage.py redeploy {app.name})"
        )
