from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.cli import get_app
from secrets_vault import repo_access


class Command(BaseCommand):
    help = (
        "Make the app's ed25519 deploy key once (or a new one with --rotate) and print its "
        "public key, to add to the repository's Deploy keys (GitHub: Settings → Deploy keys). "
        "The private key stays encrypted in Koyra."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="replace the key (the old one stops working: replace it in the repository too)",
        )

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        access, made = repo_access.deploy_key_make(app=app, rotate=opts["rotate"])
        what = "new deploy key" if made else "deploy key (unchanged; --rotate makes a new one)"
        self.stderr.write(
            f"{app.name}: {what}. Add this public key to the repository's Deploy keys (GitHub: "
            "Settings → Deploy keys → Add deploy key, read access), and use the repository's "
            "ssh URL (git@github.com:owner/repo.git):"
        )
        self.stdout.write(access.deploy_key_public)
