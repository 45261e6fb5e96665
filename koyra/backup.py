"""`manage.py backup PATH` (SPEC §6): one archive of the control plane's state; koyra.restore
brings it back. What goes in and out of it is decided here, for both.

What goes in: every row of Koyra's own apps (apps, deployments, webhooks, secrets_vault: app
settings, deploys and their logs, images, memberships, secrets and repository credentials as
the Fernet tokens they are stored as) and the users and groups they refer to, in Django's
serialization format; and the registry's manifests (repo, tag, digest) at backup time. What
never goes in: the Fernet keys, SECRET_KEY, the registry's login (bootstrap_cluster makes the
new install's own), anything of the data directory.

Why Django's serializers rather than an SQL dump or our own format: the same archive restores
on SQLite and PostgreSQL (JSON, one value per field, datetimes as ISO 8601), users' groups
and permissions travel by natural keys (permission ids differ between installs), and the
deserializer converts each field through the model field, refusing unknown ones; the rows are
then validated like any other input (full_clean, the validators) before the transaction
commits. The file format itself is koyra.backup_archive's."""

from __future__ import annotations

import json
import logging
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from deployments.boundaries import registry
from koyra import backup_archive as archive
from secrets_vault import crypto

log = logging.getLogger(__name__)
KOYRA_LABELS = ("apps", "deployments", "webhooks", "secrets_vault")
MIGRATION_LABELS = ("contenttypes", "auth", *KOYRA_LABELS)
# The columns holding Fernet tokens: restore checks that this install's keys open each one.
ENCRYPTED = {
    "apps.app": ("webhook_secret_token",),
    "secrets_vault.secret": ("token",),
    "secrets_vault.repoaccess": ("deploy_key_token", "https_token"),
}
# Rows full_clean skips: numerous and plain text; the database's constraints check them.
UNVALIDATED = {"deployments.logline"}
KEYS_ELSEWHERE = (
    "The Fernet keys are NOT in the backup, and restore needs them: keep KOYRA_FERNET_KEYS "
    "somewhere else than this machine and this archive (a password manager, a secret store)."
)


class BackupError(Exception):
    """Backup or restore refused; nothing was written. The message says why and what to do."""


@dataclass
class BackupResult:
    counts: dict[str, int]
    key_fingerprints: list[str]  # the keys restore will need
    manifests: int  # registry manifests listed
    warnings: list[str] = field(default_factory=list)


def backed_up_models() -> list[type[models.Model]]:
    """In load order: groups, then users (whose groups are natural keys), then Koyra's own."""
    koyra = [m for label in KOYRA_LABELS for m in django_apps.get_app_config(label).get_models()]
    return [Group, get_user_model(), *koyra]


def model_label(model: type[models.Model]) -> str:
    return model._meta.label_lower


def backup_create(*, path: Path) -> BackupResult:
    """Write the archive to `path` (atomically, mode 0600)."""
    crypto.ensure_keys()
    rows = _dump()
    counts = dict(Counter(r["model"] for r in rows))
    needed, warnings = _keys_needed(rows)
    manifests, registry_error = _registry_manifests(rows)
    if registry_error:
        warnings.append(
            f"the registry did not answer, so the archive lists none of its images "
            f"({registry_error}); restore still checks the registry it finds"
        )
    manifest: dict[str, Any] = {
        "format": archive.FORMAT,
        "version": archive.VERSION,
        "created": timezone.now().isoformat(),
        "koyra_version": _koyra_version(),
        "migrations": applied_migrations(),
        "counts": {model_label(m): counts.get(model_label(m), 0) for m in backed_up_models()},
        "fernet_keys": needed,
        "registry": {"address": settings.KOYRA_REGISTRY, "error": registry_error},
    }
    members = {
        archive.DATA: json.dumps(rows, cls=_Encoder).encode(),
        archive.REGISTRY: json.dumps(manifests).encode(),
    }
    try:
        archive.write(path, manifest, members)
    except archive.ArchiveError as exc:
        raise BackupError(str(exc)) from None
    except OSError as exc:
        raise BackupError(f"cannot write {path}: {exc.strerror or exc}") from None
    return BackupResult(manifest["counts"], needed, len(manifests), warnings)


def _dump() -> list[dict[str, Any]]:
    """Every row, read in one transaction so the archive is one moment's state (a deploy
    finishing meanwhile is in it entirely or not at all)."""
    rows: list[dict[str, Any]] = []
    outermost = not connection.in_atomic_block  # else the caller's transaction is the snapshot
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for model in backed_up_models():
            queryset = model._default_manager.order_by("pk")
            rows.extend(
                serializers.serialize("python", queryset.iterator(), use_natural_foreign_keys=True)
            )
    return rows


class _Encoder(DjangoJSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()  # every microsecond (DjangoJSONEncoder keeps milliseconds)
        return super().default(o)


def tokens(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(what it is, token) for every Fernet token among the rows; names, never values."""
    names = app_names(rows)
    found = []
    for r in rows:
        for column in ENCRYPTED.get(r["model"], ()):
            token = r["fields"].get(column)
            if not token:
                continue
            fields = r["fields"]
            app = fields.get("name") if r["model"] == "apps.app" else app_name_of(names, fields)
            what = fields.get("key") if r["model"] == "secrets_vault.secret" else column
            found.append((f"app {app}: {what}", token))
    return found


def app_names(rows: list[dict[str, Any]]) -> dict[int, str]:
    return {r["pk"]: r["fields"].get("name") for r in rows if r["model"] == "apps.app"}


def app_name_of(names: dict[int, str], fields: dict[str, Any]) -> str | None:
    """The name of the app a row's `app` field points to (None when it points nowhere)."""
    pk = fields.get("app")
    return names.get(pk) if isinstance(pk, int) else None


def _keys_needed(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    needed: dict[str, None] = {}
    unreadable = []
    for what, token in tokens(rows):
        fingerprint = crypto.opening_key(token)
        if fingerprint is None:
            unreadable.append(what)
        else:
            needed[fingerprint] = None
    warnings = [
        f"{what}: {crypto.NOT_DECRYPTABLE}; it is in the archive as it is, and lost unless "
        "you find the key it was made with"
        for what in unreadable
    ]
    return list(needed), warnings


def _registry_manifests(rows: list[dict[str, Any]]) -> tuple[list[dict[str, str]], str]:
    out: list[dict[str, str]] = []
    try:
        for name in sorted(r["fields"]["name"] for r in rows if r["model"] == "apps.app"):
            for tag in registry.tags(name):
                digest = registry.manifest_digest(name, tag)
                if digest:
                    out.append({"repo": name, "tag": tag, "digest": digest})
    except registry.RegistryError as exc:
        return out, str(exc)
    return out, ""


def applied_migrations() -> dict[str, list[str]]:
    applied = MigrationRecorder(connection).applied_migrations()
    return {
        label: sorted(name for app, name in applied if app == label) for label in MIGRATION_LABELS
    }


def _koyra_version() -> str:
    try:
        with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return ""


def summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {label}" for label, n in counts.items() if n) or "empty"
