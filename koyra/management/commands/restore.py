from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from koyra import backup, restore


class Command(BaseCommand):
    help = (
        "Restore an archive written by `backup` into this install, in one transaction: all "
        "of it or nothing. Run migrate and bootstrap_cluster first, with the Fernet keys the "
        "backup needs in KOYRA_FERNET_KEYS."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the archive `backup` wrote")
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace what this install's database holds (users included)",
        )

    def handle(self, *args, **opts):
        try:
            result = restore.restore(
                path=Path(opts["path"]).expanduser(), force=opts["force"], say=self.stdout.write
            )
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"restored the backup made {result.created}")
        if result.not_kept:
            self.stdout.write(
                f"{len(result.not_kept)} image(s) are not in this registry any more, marked as "
                "not kept (rollback to them is refused): " + ", ".join(result.not_kept)
            )
        for name in result.live_not_kept:
            self.stderr.write(
                f"warning: {name}'s live release's image was not kept: deploy it again "
                f"(`manage.py deploy {name}`) before a redeploy or a new node needs it"
            )
