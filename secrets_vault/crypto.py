"""The only module that touches `cryptography`: Fernet tokens under the configured keys, and
the ed25519 deploy keys of apps."""

from __future__ import annotations

import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

NOT_DECRYPTABLE = (
    "does not decrypt with any key in KOYRA_FERNET_KEYS (a wrong or removed key, or a "
    "tampered token)"
)


class VaultError(Exception):
    """A value could not be encrypted or decrypted; the message never contains the value."""


def _fernet() -> MultiFernet:
    # No fallback of any kind (not SECRET_KEY, not a default key): no key, no vault.
    keys = settings.KOYRA_FERNET_KEYS
    if not keys:
        raise VaultError(
            "No Fernet key configured: set KOYRA_FERNET_KEYS (or KOYRA_FERNET_KEYS_FILE)."
        )
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError, AttributeError) as exc:
        raise VaultError(
            "KOYRA_FERNET_KEYS holds a key that is not a valid Fernet key "
            "(32 url-safe base64-encoded bytes)."
        ) from exc


def ensure_keys() -> None:
    """VaultError unless at least one key is configured and every key is valid."""
    _fernet()


def generate_key() -> str:
    return Fernet.generate_key().decode()


def key_is_valid(key: str) -> bool:
    try:
        Fernet(key.encode())
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    """Plaintext of a token, or VaultError: never the ciphertext, never an empty stand-in."""
    fernet = _fernet()
    try:
        return fernet.decrypt(_token_bytes(token)).decode()
    except (InvalidToken, UnicodeDecodeError):
        # from None: a UnicodeDecodeError carries the decrypted bytes, which must not travel.
        raise VaultError(f"A stored secret {NOT_DECRYPTABLE}.") from None


def rotate(token: str) -> str:
    """The same plaintext re-encrypted under the first key (VaultError when no key opens it)."""
    fernet = _fernet()
    try:
        return fernet.rotate(_token_bytes(token)).decode()
    except InvalidToken:
        raise VaultError(f"A stored secret {NOT_DECRYPTABLE}.") from None


def key_fingerprint(key: str) -> str:
    """A short name for a key that says nothing about it: the first 16 hex digits of its
    SHA-256 (`printf %s KEY | sha256sum | cut -c1-16`), so a user can tell which key a backup
    needs without the key ever being written anywhere."""
    return hashlib.sha256(key.strip().encode()).hexdigest()[:16]


def key_fingerprints() -> list[str]:
    """The fingerprints of the configured keys, in order (the first one encrypts)."""
    _fernet()  # VaultError when no key or an invalid one
    return [key_fingerprint(k) for k in settings.KOYRA_FERNET_KEYS]


def opening_key(token: str) -> str | None:
    """The fingerprint of the first configured key that opens the token, or None."""
    _fernet()
    for key in settings.KOYRA_FERNET_KEYS:
        try:
            Fernet(key.encode()).decrypt(_token_bytes(token))
        except InvalidToken:
            continue
        return key_fingerprint(key)
    return None


def _token_bytes(token: str) -> bytes:
    if not isinstance(token, str) or not token:
        raise InvalidToken
    return token.encode()


def ssh_keypair(comment: str) -> tuple[str, str]:
    """A new ed25519 key pair: (the private key in OpenSSH format, the public key line
    `ssh-ed25519 AAAA... comment` to paste into a repository's Deploy keys)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode()} {comment}"
