"""Consistency checks on settings: `manage.py check` (and every server start) runs them."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured, ValidationError

from apps.validators import validate_known_hosts
from koyra import local_keys

# Koyra's own checks carry this tag: `manage.py check` runs them with Django's, the worker
# (deployments/management/commands/worker.py) runs them alone.
TAG = "koyra"

HOW_TO_MAKE_A_KEY = (
    "Make one with: python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())' and set KOYRA_FERNET_KEYS=<key> "
    "(or put it in a file named by KOYRA_FERNET_KEYS_FILE). Back it up: without it the "
    "stored secrets cannot be read."
)


def _fernet_hint() -> str:
    """How to get a key. Where a database may hold secrets, never "make a new one": only the
    key they were encrypted with reads them."""
    expected = getattr(settings, "KOYRA_FERNET_KEYS_PATH", "") or "KOYRA_FERNET_KEYS"
    existing = getattr(settings, "KOYRA_EXISTING_DATA", "")
    if not existing:
        return HOW_TO_MAKE_A_KEY
    what = existing[:1].upper() + existing[1:]
    return (
        f"{what} already exists and its secrets open only with the key they were encrypted "
        f"with: put that key (from your backup) in {expected}, or set KOYRA_FERNET_KEYS or "
        "KOYRA_FERNET_KEYS_FILE. Do not make a new key: it cannot read them."
    )


@register(TAG)
def fernet_keys(app_configs, **kwargs):
    keys = settings.KOYRA_FERNET_KEYS
    if not keys:
        why = getattr(settings, "KOYRA_FERNET_KEYS_PROBLEM", "") or "KOYRA_FERNET_KEYS is not set"
        return [
            Error(
                f"No Fernet key: {why}. Koyra refuses to start without the key that encrypts "
                "secrets.",
                hint=_fernet_hint(),
                id="koyra.E001",
            )
        ]
    bad = [i + 1 for i, key in enumerate(keys) if not local_keys.fernet_key_is_valid(key)]
    if bad:
        return [
            Error(
                f"KOYRA_FERNET_KEYS: key number {', '.join(map(str, bad))} is not a valid "
                "Fernet key (32 url-safe base64-encoded bytes).",
                hint=_fernet_hint(),
                id="koyra.E001",
            )
        ]
    return []


@register(TAG)
def secret_key(app_configs, **kwargs):
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django's own "must not be empty", raised on access
        key = ""
    if not key:
        why = getattr(settings, "KOYRA_SECRET_KEY_PROBLEM", "") or "SECRET_KEY is not set"
        return [
            Error(
                f"No SECRET_KEY: {why}.",
                hint="Set SECRET_KEY (or SECRET_KEY_FILE) to a long random string, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'.",
                id="koyra.E002",
            )
        ]
    return []


@register(TAG)
def setting_values(app_configs, **kwargs):
    """Numbers and switches from the environment that are not what their setting takes: a
    start with the default in their place would hide the typo."""
    return [
        Error(problem, hint="Fix the value or unset it.", id="koyra.E004")
        for problem in getattr(settings, "KOYRA_SETTINGS_PROBLEMS", ())
    ]


@register(TAG)
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
