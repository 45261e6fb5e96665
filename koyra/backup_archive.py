"""The backup file (`manage.py backup` / `restore`): a gzipped tar of three JSON members, written
atomically with mode 0600, and read back as what it is at restore time: a file a user hands
us. Nothing is ever extracted to disk; members are read into memory, by exact name, within
size limits checked before a byte of them is read. What the members hold is koyra.backup's."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

FORMAT = "koyra-backup"
VERSION = 1
MANIFEST = "manifest.json"  # what the archive is: format, version, migrations, counts, keys
DATA = "data.json"  # the database rows, Django's serialization format
REGISTRY = "registry.json"  # the registry's manifests at backup time: repo, tag, digest
MiB = 1024 * 1024
# The most restore reads of each member, decompressed. A member that claims more is refused
# from its tar header; a stream that decompresses to more than their sum (plus the tar's own
# headers) is stopped while it is read (a gzip bomb, a huge pax header).
LIMITS = {MANIFEST: 1 * MiB, REGISTRY: 64 * MiB, DATA: 2048 * MiB}
MAX_STREAM = sum(LIMITS.values()) + 1 * MiB
FINGERPRINT_RE = re.compile(r"[0-9a-f]{16}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")


class ArchiveError(Exception):
    """The file is not a backup this Koyra can read; the message says what is wrong with it."""


# --- writing ---------------------------------------------------------------------------------


def write(path: Path, manifest: dict[str, Any], members: dict[str, bytes]) -> None:
    """The archive at `path`, whole or not at all: written to a 0600 temporary file in the same
    directory, synced, then renamed over `path`. `manifest` gets each member's size and
    SHA-256 added, so restore notices a truncated or altered member."""
    directory = path.parent
    if path.is_dir():
        raise ArchiveError(f"{path} is a directory: give the path of the file to write")
    if not directory.is_dir():
        raise ArchiveError(f"{directory} is not a directory: make it first")
    manifest = {
        **manifest,
        "members": {
            name: {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
            for name, body in members.items()
        },
    }
    everything = {MANIFEST: _json_bytes(manifest), **members}
    # mkstemp: O_EXCL, mode 0600, a name nobody else can have chosen.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as raw:
            with (
                gzip.GzipFile(fileobj=raw, mode="wb") as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                for name, body in everything.items():
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = len(body), 0o600, int(time.time())
                    tar.addfile(info, io.BytesIO(body))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True).encode()


# --- reading ---------------------------------------------------------------------------------


def read(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(the checked manifest, {member name: bytes}) of the archive at `path`, or ArchiveError:
    exactly the three members, each a regular file within its limit, the manifest of this
    format and version, every member matching the size and SHA-256 it lists."""
    members = _members(path)
    manifest = load_json(MANIFEST, members[MANIFEST])
    check_manifest(manifest)
    for name, meta in manifest["members"].items():
        body = members[name]
        if len(body) != meta["size"] or hashlib.sha256(body).hexdigest() != meta["sha256"]:
            raise ArchiveError(
                f"{name} in the backup does not match its manifest (size or SHA-256): the file "
                "was cut short or changed after it was written"
            )
    return manifest, members


def _members(path: Path) -> dict[str, bytes]:
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below, whatever happens)
    except OSError as exc:
        raise ArchiveError(f"cannot open {path}: {exc.strerror or exc}") from None
    members: dict[str, bytes] = {}
    try:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ArchiveError(f"{path} is not a regular file")
        capped = _Capped(gzip.GzipFile(fileobj=f, mode="rb"), MAX_STREAM)
        # Stream mode: one pass, no seeking, each member read before the next header.
        with tarfile.open(fileobj=capped, mode="r|") as tar:
            while (info := tar.next()) is not None:
                _check_member(info, members)
                body = tar.extractfile(info)
                data = body.read() if body is not None else b""
                if len(data) != info.size:
                    raise ArchiveError(f"{info.name} in the backup is cut short")
                members[info.name] = data
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise ArchiveError(
            f"{path} is not a Koyra backup (a gzipped tar written by `manage.py backup`): "
            f"{type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    finally:
        f.close()
    missing = sorted(set(LIMITS) - set(members))
    if missing:
        raise ArchiveError(f"the backup lacks {', '.join(missing)}: it is incomplete")
    return members


def _check_member(info: tarfile.TarInfo, seen: dict[str, bytes]) -> None:
    shown = repr(info.name[:100])
    if info.name not in LIMITS:
        raise ArchiveError(
            f"the backup holds a member named {shown}; a Koyra backup holds only "
            f"{', '.join(sorted(LIMITS))} (nothing is ever extracted: no paths, no links)"
        )
    if not info.isreg():
        kind = "a symlink" if info.issym() else "a hard link" if info.islnk() else "not a file"
        raise ArchiveError(f"{shown} in the backup is {kind}; a backup holds regular files only")
    if info.name in seen:
        raise ArchiveError(f"the backup holds {shown} twice")
    if info.size > LIMITS[info.name]:
        raise ArchiveError(
            f"{shown} in the backup is {info.size} bytes, more than the "
            f"{LIMITS[info.name] // MiB} MiB restore reads"
        )


class _Capped(io.RawIOBase):
    """A reader that refuses to deliver more than `cap` bytes in all."""

    def __init__(self, inner: gzip.GzipFile, cap: int) -> None:
        self.inner, self.left = inner, cap

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        want = self.left + 1 if n is None or n < 0 else min(n, self.left + 1)
        data = self.inner.read(want)
        self.left -= len(data)
        if self.left < 0:
            raise ArchiveError(
                f"the backup decompresses to more than {MAX_STREAM // MiB} MiB: refused"
            )
        return data


def load_json(name: str, body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArchiveError(f"{name} in the backup is not valid JSON: {str(exc)[:200]}") from None


# --- the manifest's shape --------------------------------------------------------------------


def check_manifest(m: Any) -> None:
    """ArchiveError unless `m` is a manifest of this format and version, every field of the
    expected type (what restore reads from it afterwards needs no more checks)."""
    _expect(isinstance(m, dict), "is not a JSON object")
    if m.get("format") != FORMAT:
        raise ArchiveError(f"{MANIFEST} is not a Koyra backup's (format {m.get('format')!r:.40})")
    if m.get("version") != VERSION or isinstance(m.get("version"), bool):
        raise ArchiveError(
            f"the backup is format version {m.get('version')!r:.20}; this Koyra reads version "
            f"{VERSION} only: restore it with the Koyra version that wrote it"
        )
    _expect(isinstance(m.get("created"), str) and len(m["created"]) < 64, "has no `created`")
    _expect(isinstance(m.get("koyra_version"), str), "has no `koyra_version`")
    migrations = m.get("migrations")
    _expect(
        isinstance(migrations, dict)
        and all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(n, str) for n in v)
            for k, v in migrations.items()
        ),
        "`migrations` is not {app label: [migration names]}",
    )
    counts = m.get("counts")
    _expect(
        isinstance(counts, dict) and all(_count(v) for v in counts.values()),
        "`counts` is not {model: number of rows}",
    )
    keys = m.get("fernet_keys")
    _expect(
        isinstance(keys, list) and all(_matches(FINGERPRINT_RE, k) for k in keys),
        "`fernet_keys` is not a list of key fingerprints",
    )
    reg = m.get("registry")
    _expect(
        isinstance(reg, dict)
        and isinstance(reg.get("address"), str)
        and isinstance(reg.get("error"), str),
        "`registry` is not {address, error}",
    )
    members = m.get("members")
    _expect(
        isinstance(members, dict)
        and set(members) == {DATA, REGISTRY}
        and all(
            isinstance(v, dict) and _count(v.get("size")) and _matches(SHA256_RE, v.get("sha256"))
            for v in members.values()
        ),
        f"`members` does not list {DATA} and {REGISTRY} with their size and sha256",
    )


def _expect(ok: bool, problem: str) -> None:
    if not ok:
        raise ArchiveError(f"{MANIFEST} in the backup {problem}")


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _matches(pattern: re.Pattern[str], v: Any) -> bool:
    return isinstance(v, str) and pattern.fullmatch(v) is not None
