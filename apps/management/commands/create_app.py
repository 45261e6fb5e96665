from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps import services
from apps.models import App

WEBHOOK_CONTENT_TYPES = "application/json or application/x-www-form-urlencoded (either works)"


class Command(BaseCommand):
    help = "Create an app; prints its webhook URL and secret (the secret is shown only now)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--repo", required=True, help="git URL of the repository")
        parser.add_argument("--branch", default="main")
        parser.add_argument(
            "--trigger", default="push", choices=[c for c, _ in App.TRIGGER_CHOICES]
        )
        parser.add_argument("--domain", action="append", default=[], dest="domains")
        parser.add_argument(
            "--workflow",
            action="append",
            default=[],
            dest="workflows",
            help="with --trigger workflow_run: deploy once this workflow succeeded for the "
            "commit (repeat it: all of them must succeed)",
        )
        parser.add_argument("--owner", help="username of the owning user")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        owner = None
        if opts["owner"]:
            from django.contrib.auth import get_user_model

            owner = get_user_model().objects.filter(username=opts["owner"]).first()
            if owner is None:
                raise CommandError(f"No user named {opts['owner']!r}.")
        try:
            app, secret = services.app_create(
                name=opts["name"],
                repo_url=opts["repo"],
                branch=opts["branch"],
                trigger=opts["trigger"],
                domains=opts["domains"],
                workflows=opts["workflows"],
                owner=owner,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(_messages(exc))) from None
        url = services.app_webhook_url(app=app)
        if opts["json"]:
            self.stdout.write(
                json.dumps({"name": app.name, "webhook_url": url, "webhook_secret": secret})
            )
        else:
            self.stdout.write(f"webhook_url: {url}")
            self.stdout.write(f"webhook_secret: {secret}")
            self.stdout.write(f"webhook_events: {app.webhook_events}")
            self.stdout.write(f"webhook_content_type: {WEBHOOK_CONTENT_TYPES}")


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "message_dict"):
        return [m for msgs in exc.message_dict.values() for m in msgs]
    return exc.messages
