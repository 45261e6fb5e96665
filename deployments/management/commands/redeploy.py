from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.cli import get_app
from deployments import services
from deployments.management.commands._common import finish


class Command(BaseCommand):
    help = "New containers with the current config and secrets, on the live image: no build."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--wait", action="store_true")

    def handle(self, *args, **opts):
        try:
            deploy = services.redeploy_create(app=get_app(opts["name"]))
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        finish(self, deploy, opts["wait"])
