"""`manage.py restore PATH`: an archive written by koyra.backup brought back into this install,
all of it or nothing. The archive is a file a user hands us: its format is checked by
koyra.backup_archive, its rows here (shapes, counts, duplicates, the values restore itself
uses), then this install's Fernet keys must open every encrypted value and the registry is
asked which images it still holds, all before the first row is written; the rows are then
loaded, validated (full_clean and the validators) and checked against each other in one
transaction. Images the registry no longer holds are marked not kept (`Image.deleted`), so
rollback to them is refused with the reason."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.sessions.models import Session
from django.core import serializers
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist, ValidationError
from django.core.management.color import no_style
from django.core.serializers.base import DeserializationError
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone

from apps import validators
from deployments.boundaries import registry
from deployments.models import Deploy, Image
from deployments.release_spec import ReleaseSpec
from koyra import backup
from koyra import backup_archive as archive
from secrets_vault import crypto

log = logging.getLogger(__name__)


@dataclass
class RestoreResult:
    created: str
    counts: dict[str, int]
    not_kept: list[str]  # ref@digest of images the registry no longer holds, now marked
    live_not_kept: list[str]  # apps whose live release's image is gone


def restore(
    *, path: Path, force: bool = False, say: Callable[[str], None] = log.info
) -> RestoreResult:
    """Bring this install to the archive's state in one transaction, or refuse with nothing
    written: the archive is checked whole, and this install's keys must open every encrypted
    value, before the first row is touched."""
    try:
        manifest, members = archive.read(path)
    except archive.ArchiveError as exc:
        raise backup.BackupError(str(exc)) from None
    _check_migrations(manifest["migrations"])
    rows = _rows(members[archive.DATA], manifest["counts"])
    _check_keys(rows, manifest["fernet_keys"])
    not_kept = _images_not_kept(rows)
    say(f"restoring the backup made {manifest['created']} ({backup.summary(manifest['counts'])})")
    try:
        with transaction.atomic():
            _clear_target(force)
            _load(rows)
            now = timezone.now()
            Image.objects.filter(pk__in=[pk for pk, _ in not_kept]).update(deleted=now)
    except (ValidationError, DeserializationError, ObjectDoesNotExist, FieldDoesNotExist) as exc:
        raise backup.BackupError(
            f"the backup's rows do not load, nothing was restored: {_why(exc)}"
        ) from None
    except DatabaseError as exc:
        raise backup.BackupError(
            f"the database refused the backup's rows, nothing was restored: {str(exc)[:300]}"
        ) from None
    return RestoreResult(
        created=manifest["created"],
        counts=manifest["counts"],
        not_kept=[pinned for _, pinned in not_kept],
        live_not_kept=_live_not_kept(rows, {pk for pk, _ in not_kept}),
    )


def _why(exc: Exception) -> str:
    """A refusal's reason, without the refused value where Django would quote it (a stored
    token, a password hash)."""
    if isinstance(exc, DeserializationError):
        # Django raises it while handling the field's own error (__context__), quoting the
        # value: only the reason is passed on.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ValidationError | ObjectDoesNotExist | FieldDoesNotExist):
            detail = _why(cause) if isinstance(cause, ValidationError) else str(cause)[:200]
        else:
            detail = f"a value of the wrong type ({type(cause).__name__})"
        return f"{str(exc).split(': (', 1)[-1].split(')', 1)[0]}: {detail}"
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())[:500]
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)[:500]
    return str(exc)[:500]


def _check_migrations(theirs: dict[str, list[str]]) -> None:
    ours = backup.applied_migrations()
    differ = [
        label for label in backup.MIGRATION_LABELS if sorted(theirs.get(label, [])) != ours[label]
    ]
    if differ:

        def last(m: dict[str, list[str]], label: str) -> str:
            return max(m.get(label) or ["none"])

        detail = "; ".join(
            f"{label}: backup at {last(theirs, label)}, here {last(ours, label)}"
            for label in differ
        )
        raise backup.BackupError(
            f"the backup was made by a Koyra whose database schema differs from this one "
            f"({detail}). Restore it with the Koyra version that made it (then upgrade and "
            "migrate), or run `manage.py migrate` here first if this install is behind."
        )


def _rows(body: bytes, counts: dict[str, int]) -> list[dict[str, Any]]:
    """The data member, shape-checked: a list of {model, pk, fields} of known models only,
    as many of each as the manifest says."""
    try:
        rows = archive.load_json(archive.DATA, body)
    except archive.ArchiveError as exc:
        raise backup.BackupError(str(exc)) from None
    known = {backup.model_label(m) for m in backup.backed_up_models()}
    if not isinstance(rows, list):
        raise backup.BackupError(f"{archive.DATA} in the backup is not a list of rows")
    for i, r in enumerate(rows):
        if not (
            isinstance(r, dict)
            and set(r) == {"model", "pk", "fields"}
            and r["model"] in known
            and isinstance(r["pk"], int)
            and not isinstance(r["pk"], bool)
            and r["pk"] > 0
            and isinstance(r["fields"], dict)
        ):
            shown = validators.quote(r.get("model") if isinstance(r, dict) else r)
            raise backup.BackupError(
                f"row {i} of {archive.DATA} in the backup is not a row of a model Koyra backs "
                f"up ({shown}): each is {{model, pk, fields}}, of {', '.join(sorted(known))}"
            )
    seen: set[tuple[str, int]] = set()
    for r in rows:
        if (r["model"], r["pk"]) in seen:
            raise backup.BackupError(
                f"{archive.DATA} in the backup holds {r['model']} #{r['pk']} twice"
            )
        seen.add((r["model"], r["pk"]))
    found = Counter(r["model"] for r in rows)
    if set(counts) - known or any(found[m] != counts.get(m, 0) for m in known):
        raise backup.BackupError(
            f"{archive.DATA} in the backup does not hold the rows its manifest counts: the "
            "archive was altered"
        )
    _check_values(rows)
    return rows


def _check_values(rows: list[dict[str, Any]]) -> None:
    """What restore itself uses before the transaction (app names, image digests, as registry
    URL paths), and the tokens' type."""
    for r in rows:
        f = r["fields"]
        try:
            if r["model"] == "apps.app":
                validators.validate_app_name(f.get("name"))
            elif r["model"] == "deployments.image":
                validators.validate_image_digest(f.get("digest"))
            for column in backup.ENCRYPTED.get(r["model"], ()):
                if not isinstance(f.get(column, ""), str):
                    raise ValidationError(f"{column} is not a string")
        except ValidationError as exc:
            raise backup.BackupError(
                f"{r['model']} #{r['pk']} in the backup: {_why(exc)}"
            ) from None


def _check_keys(rows: list[dict[str, Any]], needed: list[str]) -> None:
    try:
        ours = crypto.key_fingerprints()
        failing = [what for what, token in backup.tokens(rows) if crypto.opening_key(token) is None]
    except crypto.VaultError as exc:
        raise backup.BackupError(str(exc)) from None
    if not failing:
        return
    missing = [k for k in needed if k not in ours] or needed
    raise backup.BackupError(
        f"{len(failing)} encrypted value(s) in the backup do not decrypt with any key in "
        f"KOYRA_FERNET_KEYS ({', '.join(failing[:5])}{', ...' if len(failing) > 5 else ''}); "
        f"nothing was restored. The backup needs the key(s) with fingerprint "
        f"{', '.join(missing) or '(none recorded)'}; this install has {', '.join(ours)}. Add "
        "the missing key to KOYRA_FERNET_KEYS (a key's fingerprint: "
        "`printf %s KEY | sha256sum | cut -c1-16`) and run restore again."
    )


def _images_not_kept(rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(pk, ref@digest) of the archive's images the registry no longer holds (a new machine's
    registry, a lost volume): rollback to them is refused, naming why."""
    names = backup.app_names(rows)
    gone = []
    try:
        for r in rows:
            f = r["fields"]
            if r["model"] != "deployments.image" or f.get("deleted"):
                continue
            name = backup.app_name_of(names, f)
            if name is None or not registry.manifest_exists(name, f["digest"]):
                gone.append((r["pk"], f"{str(f.get('ref', '')).rsplit(':', 1)[0]}@{f['digest']}"))
    except registry.RegistryError as exc:
        raise backup.BackupError(
            f"restore asks the registry which of the backup's images it still holds, and it "
            f"did not answer ({exc}); nothing was restored. Start it (`manage.py "
            "bootstrap_cluster`) and run restore again."
        ) from None
    return gone


def _clear_target(force: bool) -> None:
    held = {
        backup.model_label(m): n
        for m in backup.backed_up_models()
        if (n := m._default_manager.count())
    }
    if not held:
        return
    if not force:
        raise backup.BackupError(
            f"this install's database is not empty ({backup.summary(held)}). Restore replaces "
            "everything in it with the backup: run it again with --force to do so."
        )
    for model in reversed(backup.backed_up_models()):
        model._default_manager.all().delete()
    Session.objects.all().delete()  # no session outlives the users it was for


def _load(rows: list[dict[str, Any]]) -> None:
    saved = []
    for obj in serializers.deserialize("python", rows):
        obj.save()
        saved.append(obj.object)
    for instance in saved:
        if backup.model_label(type(instance)) in backup.UNVALIDATED:
            continue
        try:
            instance.full_clean(validate_unique=False, validate_constraints=False)
            _check_row(instance)
        except ValidationError as exc:
            raise backup.BackupError(
                f"{backup.model_label(type(instance))} #{instance.pk} in the backup is not valid "
                f"({_why(exc)}); nothing was restored"
            ) from None
    loaded = backup.backed_up_models()
    connection.check_constraints(table_names=[m._meta.db_table for m in loaded])
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), loaded):
            cursor.execute(sql)


def _check_row(instance: models.Model) -> None:
    """What full_clean does not cover: values the pipeline later hands to git and Docker."""
    if isinstance(instance, Image):
        validators.validate_commit(instance.commit)
        validators.validate_image_digest(instance.digest)
    elif isinstance(instance, Deploy):
        if instance.commit:
            validators.validate_commit(instance.commit)
        if not instance.spec:
            return
        try:
            image = ReleaseSpec.from_json(instance.spec).image
        except (TypeError, AttributeError):
            raise ValidationError("its recorded spec is not a release spec") from None
        # What a rollback re-applies runs the deploy's own image, nothing the file names.
        if instance.image is None or image != instance.image.pinned:
            raise ValidationError("its recorded spec names an image other than its own")


def _live_not_kept(rows: list[dict[str, Any]], gone: set[int]) -> list[str]:
    names = backup.app_names(rows)
    return sorted(
        backup.app_name_of(names, f) or "?"
        for r in rows
        if r["model"] == "deployments.deploy"
        and (f := r["fields"]).get("status") == "live"
        and f.get("image") in gone
    )
