from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.cli import get_app
from deployments import services


class Command(BaseCommand):
    help = "Stop the app's queued or running deploy (its own build, nobody else's)."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, **opts):
        deploy = services.deploy_cancel(app=get_app(opts["name"]))
        if deploy is None:
            self.stdout.write("nothing to cancel: no queued or running deploy")
        else:
            self.stdout.write(f"cancelling deploy #{deploy.pk}")
