from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps import access
from apps.management.commands.revoke_access import app_and_user


class Command(BaseCommand):
    help = (
        "Give USERNAME a ROLE on the app NAME: viewer (sees it), deployer (also deploys, "
        "redeploys, rolls back, cancels, sets secrets) or admin (also settings, repository "
        "credentials, access, delete). Replaces the role they had."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("username")
        parser.add_argument("role", help=f"one of {', '.join(access.ROLES)}")

    def handle(self, *args, **opts):
        if opts["role"] not in access.ROLES:
            raise CommandError(
                f"Unknown role {opts['role']!r}: use one of {', '.join(access.ROLES)}."
            )
        app, user = app_and_user(opts["name"], opts["username"])
        try:
            said = access.grant(app=app, user=user, role=opts["role"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(said)
