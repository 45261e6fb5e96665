from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps import services
from apps.cli import get_app
from apps.models import App


class Command(BaseCommand):
    help = (
        "Change an app's settings, with create_app's validation: all of them, or none when one "
        "is refused. --domain and --workflow replace the app's list (repeat them for several)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--branch")
        parser.add_argument("--trigger", choices=[c for c, _ in App.TRIGGER_CHOICES])
        parser.add_argument("--workflow", action="append", dest="workflows")
        parser.add_argument("--domain", action="append", dest="domains")
        parser.add_argument("--clear-workflows", action="store_true")
        parser.add_argument("--clear-domains", action="store_true")

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        changes = {
            "branch": opts["branch"],
            "trigger": opts["trigger"],
            "workflows": _list(opts, "workflows", "--workflow"),
            "domains": _list(opts, "domains", "--domain"),
        }
        if all(value is None for value in changes.values()):
            raise CommandError(
                "Nothing to change: give --branch, --trigger, --workflow, --domain, "
                "--clear-workflows or --clear-domains."
            )
        try:
            app = services.app_update(app=app, **changes)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"branch: {app.branch}")
        self.stdout.write(f"trigger: {app.trigger}")
        self.stdout.write(f"workflows: {', '.join(app.workflows) or '-'}")
        self.stdout.write(f"domains: {', '.join(app.domains) or '-'}")
        self.stdout.write(f"webhook_events: {app.webhook_events}")


def _list(opts: dict, key: str, flag: str) -> list[str] | None:
    """The new list (given values, or [] with --clear-...), or None to leave it."""
    if opts[f"clear_{key}"]:
        if opts[key]:
            raise CommandError(f"Give either {flag} or --clear-{key}, not both.")
        return []
    return opts[key]
