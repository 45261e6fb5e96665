from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.cli import get_app
from deployments import services
from deployments.management.commands._common import finish


class Command(BaseCommand):
    help = "Queue a deploy of the branch head (or --commit SHA); --wait follows it."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--commit", default="")
        parser.add_argument("--wait", action="store_true")

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        try:
            deploy = services.deploy_create(app=app, commit=opts["commit"], trigger="manual")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        finish(self, deploy, opts["wait"])
