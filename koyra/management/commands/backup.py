from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from koyra import backup
from secrets_vault import crypto


class Command(BaseCommand):
    help = (
        "Write one archive of the control plane's state to PATH (mode 0600): the database "
        "(apps, settings, deploys, logs, users, secrets encrypted as stored) and the "
        "registry's manifests. Never the Fernet keys: keep them elsewhere."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the archive to write, e.g. koyra-backup.tar.gz")

    def handle(self, *args, **opts):
        path = Path(opts["path"]).expanduser().absolute()
        try:
            result = backup.backup_create(path=path)
        except (backup.BackupError, crypto.VaultError) as exc:
            raise CommandError(str(exc)) from None
        for warning in result.warnings:
            self.stderr.write(f"warning: {warning}")
        rows = ", ".join(f"{n} {label}" for label, n in result.counts.items() if n) or "no rows"
        self.stdout.write(f"wrote {path}: {rows}; {result.manifests} registry manifest(s)")
        self.stdout.write(backup.KEYS_ELSEWHERE)
        if result.key_fingerprints:
            self.stdout.write(
                "restore needs the key(s) with fingerprint "
                f"{', '.join(result.key_fingerprints)} "
                "(`printf %s KEY | sha256sum | cut -c1-16`)"
            )
