from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from deployments import retention
from deployments.boundaries import engine, registry


class Command(BaseCommand):
    help = (
        "Keep the last KOYRA_KEEP_RELEASES live images per app (plus live and rollback "
        "targets), delete the rest from the registry and this engine, free the blobs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="only say what would go")

    def handle(self, *args, **opts):
        try:
            retention.prune_all(dry_run=opts["dry_run"], say=self.stdout.write)
        except (engine.EngineError, registry.RegistryError) as exc:
            raise CommandError(str(exc)) from None
