from __future__ import annotations

import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.cli import get_app
from secrets_vault import repo_access


class Command(BaseCommand):
    help = (
        "Set the HTTPS token Koyra clones the app's repository with (e.g. a fine-grained "
        "GitHub token with read access to Contents), read from standard input; --clear "
        "removes it. Stored encrypted, never shown again."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--clear", action="store_true", help="remove the app's token")

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        if opts["clear"]:
            cleared = repo_access.repo_token_clear(app=app)
            self.stdout.write(f"{app.name}: token {'removed' if cleared else 'was not set'}")
            return
        token = sys.stdin.read()
        if token.endswith("\n"):
            token = token[:-1]  # `echo token |` adds one
        if token.endswith("\r"):
            token = token[:-1]
        try:
            repo_access.repo_token_set(app=app, token=token)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"{app.name}: repository token set (used from the next deploy)")
