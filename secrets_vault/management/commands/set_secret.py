from __future__ import annotations

import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.cli import get_app
from apps.validators import MAX_SECRET_BYTES as MAX_VALUE_BYTES
from secrets_vault import services


class Command(BaseCommand):
    help = "Set an app's runtime secret; the value is read from standard input."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("key")

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        data = sys.stdin.buffer.read(MAX_VALUE_BYTES + 2)
        if len(data) > MAX_VALUE_BYTES + 1:
            raise CommandError(f"The value is over {MAX_VALUE_BYTES // 1024} KiB; nothing set.")
        try:
            # Strict: a value that is not UTF-8 is refused, never stored altered.
            value = data.decode()
        except UnicodeDecodeError as exc:
            raise CommandError(
                f"The value is not UTF-8 text (byte {exc.start}); store binary values "
                "encoded (e.g. base64). Nothing was set."
            ) from None
        if value.endswith("\n"):
            value = value[:-1]  # `echo value |` adds one; the secret itself does not have it
        try:
            services.secret_set(app=app, key=opts["key"], value=value)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"{app.name}: {opts['key']} set (redeploy to apply)")
