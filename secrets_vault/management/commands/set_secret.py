from __future__ import annotations

import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.cli import get_app
from secrets_vault import services


class Command(BaseCommand):
    help = "Set an app's runtime secret; the value is read from standard input."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("key")

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        value = sys.stdin.read()
        if value.endswith("\n"):
            value = value[:-1]  # `echo value |` adds one; the secret itself does not have it
        try:
            services.secret_set(app=app, key=opts["key"], value=value)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"{app.name}: {opts['key']} set (redeploy to apply)")
