from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.cli import get_app
from deployments import services
from deployments.management.commands._common import finish
from deployments.models import Deploy


class Command(BaseCommand):
    help = "Back to the previous live release (or --to DEPLOY_ID): its image and spec, no build."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--to", type=int, dest="to")
        parser.add_argument("--wait", action="store_true")

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        to = None
        if opts["to"] is not None:
            to = Deploy.objects.filter(pk=opts["to"], app=app).first()
            if to is None:
                raise CommandError(f"{app.name} has no deploy #{opts['to']}.")
        try:
            deploy = services.rollback_create(app=app, to=to)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        finish(self, deploy, opts["wait"])
