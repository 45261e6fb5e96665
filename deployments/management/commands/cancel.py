from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.cli import get_app
from deployments import services


class Command(BaseCommand):
    help = (
        "Stop the app's queued and running deploys (its own build, nobody else's); with "
        "--deploy DEPLOY_ID, that deploy alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--deploy", type=int, dest="deploy", metavar="DEPLOY_ID")

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        if opts["deploy"] is not None:
            deploy = app.deploys.filter(pk=opts["deploy"]).first()
            if deploy is None:
                raise CommandError(
                    f"{app.name} has no deploy #{opts['deploy']}. List them with: "
                    f"list_deploys {app.name}"
                )
            if not services.deploy_cancel_one(deploy=deploy):
                self.stdout.write(
                    f"nothing to cancel: deploy #{deploy.pk} already finished ({deploy.status})"
                )
                return
            self.stdout.write(f"cancelling deploy #{deploy.pk}")
            return
        deploy = services.deploy_cancel(app=app)
        if deploy is None:
            self.stdout.write("nothing to cancel: no queued or running deploy")
        else:
            self.stdout.write(f"cancelling deploy #{deploy.pk}")
