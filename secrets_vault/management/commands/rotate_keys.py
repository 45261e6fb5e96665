from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from secrets_vault import crypto, services


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret, webhook secret and repository credential under the first "
        "key of KOYRA_FERNET_KEYS. "
        "Put the new key first, keep the old ones after it, run this, then drop the old keys."
    )

    def handle(self, *args, **opts):
        try:
            result = services.secrets_rotate()
        except crypto.VaultError as exc:
            raise CommandError(str(exc)) from None
        # Counts and names only: never a value, never a token.
        self.stdout.write(
            f"re-encrypted under the first key: {result.secrets} secret(s), "
            f"{result.webhook_secrets} webhook secret(s), "
            f"{result.repo_credentials} repository credential(s)"
        )
        if result.failed:
            for row in result.failed:
                self.stderr.write(f"{row}: {crypto.NOT_DECRYPTABLE}; left as it was")
            raise CommandError(
                f"{len(result.failed)} value(s) could not be re-encrypted (listed above). Add "
                "the key they were made with to KOYRA_FERNET_KEYS and run rotate_keys again; "
                "do not drop any old key until it finishes without errors."
            )
