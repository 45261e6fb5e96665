"""The only module that touches `cryptography`: Fernet tokens under the configured keys."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class VaultError(Exception):
    """A value could not be encrypted or decrypted; the message never contains the value."""


def _fernet() -> MultiFernet:
    keys = settings.KOYRA_FERNET_KEYS
    if not keys:
        raise VaultError(
            "No Fernet key configured: set KOYRA_FERNET_KEYS (or KOYRA_FERNET_KEYS_FILE)."
        )
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError) as exc:
        raise VaultError(
            "KOYRA_FERNET_KEYS holds a key that is not a valid Fernet key "
            "(32 url-safe base64-encoded bytes)."
        ) from exc


def generate_key() -> str:
    return Fernet.generate_key().decode()


def key_is_valid(key: str) -> bool:
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        return False
    return True


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    """Plaintext of a token, or VaultError: never the ciphertext, never an empty stand-in."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise VaultError(
            "A stored secret does not decrypt with any configured key (wrong or removed key in "
            "KOYRA_FERNET_KEYS, or a tampered token)."
        ) from exc


def rotate(token: str) -> str:
    """The same plaintext re-encrypted under the first key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise VaultError("A stored secret does not decrypt with any configured key.") from exc
