"""SECRET_KEY and the Fernet keys when the environment does not give them: files under
KOYRA_DATA_DIR (`secret_key`, `fernet.keys`), the ones `make run` has always used, so that
`manage.py`, the worker and daphne started by hand read the same keys as `make run`.

The environment wins: `X`, then the file named by `X_FILE` (SPEC §7), then the data dir's file.
A new install gets its keys made here, once. A new Fernet key is never made where a database
may already hold secrets encrypted with the old one (it could not read them): Koyra then
refuses to start (koyra.E001) and says where the key is expected.

Imported by settings: standard library only (a Fernet key is 32 random bytes, url-safe base64,
made and checked here without `cryptography`, which secrets_vault/crypto.py alone imports).
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILES = {"SECRET_KEY": "secret_key", "KOYRA_FERNET_KEYS": "fernet.keys"}
MADE = {
    "SECRET_KEY": "made a SECRET_KEY in {path}",
    "KOYRA_FERNET_KEYS": "made a Fernet key in {path} - back it up: secrets cannot be read "
    "without it",
}


@dataclass(frozen=True)
class Key:
    value: str  # "" when there is none
    path: str  # the file it was read from or is expected in ("" when from the environment)
    problem: str = ""  # why there is none: one sentence naming the place


def new_secret_key() -> str:
    return secrets.token_urlsafe(50)


def new_fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def fernet_key_is_valid(key: str) -> bool:
    """Whether cryptography's `Fernet(key.encode())` accepts the key, by Fernet's own test
    (url-safe base64, decoded as it decodes it, of exactly 32 bytes) but without importing
    `cryptography`: koyra.E001 runs in the worker, which otherwise never needs it.
    tests/test_local_keys.py holds this to Fernet's verdict."""
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (ValueError, TypeError, AttributeError):  # binascii.Error is a ValueError
        return False


def existing_data(database: Mapping[str, Any]) -> str:
    """What may already hold encrypted secrets, or "" for a new install: the SQLite file when
    it exists; any other database, which settings cannot look into, counts as existing."""
    if database.get("ENGINE") == "django.db.backends.sqlite3":
        name = str(database.get("NAME") or "")
        return f"the database {name}" if name and Path(name).exists() else ""
    return "the database DATABASE_URL names"


def load(
    name: str,
    *,
    data_dir: Path,
    make: Callable[[], str] | None,
    environ: Mapping[str, str] = os.environ,
) -> Key:
    """The key `name` from the environment, X_FILE or the data dir; made in the data dir by
    `make` when there is none there (None: never made)."""
    if environ.get(name, "").strip():
        return Key(environ[name], "")
    named = environ.get(f"{name}_FILE", "").strip()
    path = Path(named) if named else data_dir / FILES[name]
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    except OSError as exc:
        return Key("", str(path), f"{path} cannot be read ({exc.strerror})")
    if value:
        return Key(value, str(path))
    where = f"{name}_FILE names {path}, which" if named else f"{path}"
    state = "is empty" if path.exists() else "does not exist"
    if named or make is None:
        return Key("", str(path), f"{name} is not set and {where} {state}")
    try:
        value = _make(name, path, make())
    except OSError as exc:
        return Key("", str(path), f"{name} is not set and {path} cannot be made ({exc.strerror})")
    return Key(value, str(path))


def _make(name: str, path: Path, value: str) -> str:
    """Write the key to `path` (mode 0600) unless another process just did; the key in the
    file is the one returned. Linked into place, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            existing = path.read_text().strip()
            if existing:
                return existing
            os.replace(tmp, path)  # an empty file from an interrupted first run
        sys.stderr.write(f"koyra: {MADE[name].format(path=path)}\n")
        return value
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
