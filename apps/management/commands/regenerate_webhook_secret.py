from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps import services
from apps.models import App


class Command(BaseCommand):
    help = (
        "Give an app a new webhook secret and print it (shown only now). The old secret stops "
        "working at once: paste the new one into the GitHub webhook's settings."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, **opts):
        app = App.objects.filter(name=opts["name"]).first()
        if app is None:
            raise CommandError(f"No app named {opts['name']!r}.")
        secret = services.app_regenerate_webhook_secret(app=app)
        self.stdout.write(f"webhook_secret: {secret}")
