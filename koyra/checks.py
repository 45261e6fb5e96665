"""Consistency checks on settings: `manage.py check` (and every server start) runs them."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ValidationError

from apps.validators import validate_known_hosts
from secrets_vault import crypto

HOW_TO_MAKE_A_KEY = (
    "Make one with: python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())' and set KOYRA_FERNET_KEYS=<key> "
    "(or put it in a file named by KOYRA_FERNET_KEYS_FILE). Back it up: without it the "
    "stored secrets cannot be read."
)


@register()
def fernet_keys(app_configs, **kwargs):
    keys = settings.KOYRA_FERNET_KEYS
    if not keys:
        return [
            Error(
                "KOYRA_FERNET_KEYS is not set: Koyra refuses to start without a key to "
                "encrypt secrets.",
                hint=HOW_TO_MAKE_A_KEY,
                id="koyra.E001",
            )
        ]
    bad = [i + 1 for i, key in enumerate(keys) if not crypto.key_is_valid(key)]
    if bad:
        return [
            Error(
                f"KOYRA_FERNET_KEYS: key number {', '.join(map(str, bad))} is not a valid "
                "Fernet key (32 url-safe base64-encoded bytes).",
                hint=HOW_TO_MAKE_A_KEY,
                id="koyra.E001",
            )
        ]
    return []


@register()
def secret_key(app_configs, **kwargs):
    if not settings.SECRET_KEY:
        return [
            Error(
                "SECRET_KEY is not set.",
                hint="Set SECRET_KEY (or SECRET_KEY_FILE) to a long random string, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'.",
                id="koyra.E002",
            )
        ]
    return []


@register()
def git_trust(app_configs, **kwargs):
    """KOYRA_GIT_KNOWN_HOSTS and KOYRA_GIT_CA_FILE, which the worker's git trusts."""
    errors = []
    try:
        validate_known_hosts(settings.KOYRA_GIT_KNOWN_HOSTS)
    except ValidationError as exc:
        errors.append(Error(exc.messages[0], id="koyra.E003"))
    ca_file = settings.KOYRA_GIT_CA_FILE
    if ca_file and not Path(ca_file).is_file():
        errors.append(
            Error(
                f"KOYRA_GIT_CA_FILE names {ca_file!r}, which is not a file.",
                hint="Give the path of a PEM bundle of the git server's certificate authority.",
                id="koyra.E003",
            )
        )
    return errors
