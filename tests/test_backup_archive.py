"""The backup file as restore meets it (koyra/backup_archive.py): a file a user hands us. Only
the three members, as regular files, within their limits, matching the manifest; nothing is
ever extracted. Written whole or not at all, mode 0600."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile

import pytest

from koyra import backup_archive as archive

MANIFEST = {
    "format": archive.FORMAT,
    "version": archive.VERSION,
    "created": "2026-11-26T17:00:00+00:00",
    "koyra_version": "0.1.0",
    "migrations": {"apps": ["0001_initial"]},
    "counts": {"apps.app": 0},
    "fernet_keys": ["0123456789abcdef"],
    "registry": {"address": "127.0.0.1:5000", "error": ""},
}
MEMBERS = {archive.DATA: b"[]", archive.REGISTRY: b"[]"}


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.tar.gz"
    archive.write(path, MANIFEST, MEMBERS)
    return path


def _tar(path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    """A gzipped tar of exactly these headers and bodies."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, body in entries:
            tar.addfile(info, io.BytesIO(body) if info.isreg() else None)
    path.write_bytes(gzip.compress(raw.getvalue()))


def _file(name: str, body: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(body)
    return info, body


def _members_of(path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def test_it_reads_back_what_it_wrote(good):
    manifest, members = archive.read(good)
    assert manifest["members"][archive.DATA]["size"] == 2
    assert {k: v for k, v in members.items() if k != archive.MANIFEST} == MEMBERS
    assert stat.S_IMODE(os.stat(good).st_mode) == 0o600


def test_a_failed_write_leaves_the_previous_archive_and_no_temporary(good, tmp_path):
    before = good.read_bytes()
    with pytest.raises(TypeError):
        archive.write(good, MANIFEST, {archive.DATA: "not bytes", archive.REGISTRY: b"[]"})
    assert good.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["good.tar.gz"]


def test_it_will_not_write_over_a_directory(tmp_path):
    with pytest.raises(archive.ArchiveError, match="is a directory"):
        archive.write(tmp_path, MANIFEST, MEMBERS)


@pytest.mark.parametrize(
    "name",
    ["../manifest.json", "/etc/passwd", "./data.json", "x/../data.json", "data.json/", "evil"],
)
def test_a_member_of_another_name_is_refused(good, tmp_path, name):
    path = tmp_path / "bad.tar.gz"
    _tar(path, [*_members_of(good), _file(name, b"x")])
    with pytest.raises(archive.ArchiveError, match="holds only"):
        archive.read(path)


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        (tarfile.SYMTYPE, "a symlink"),
        (tarfile.LNKTYPE, "a hard link"),
        (tarfile.DIRTYPE, "not a file"),
    ],
)
def test_a_member_that_is_not_a_regular_file_is_refused(good, tmp_path, kind, says):
    entries = [(m, b) for m, b in _members_of(good) if m.name != archive.REGISTRY]
    info = tarfile.TarInfo(archive.REGISTRY)
    info.type, info.linkname = kind, "/etc/passwd"
    path = tmp_path / "bad.tar.gz"
    _tar(path, [*entries, (info, b"")])
    with pytest.raises(archive.ArchiveError, match=says):
        archive.read(path)


def test_a_member_twice_is_refused(good, tmp_path):
    path = tmp_path / "bad.tar.gz"
    entries = _members_of(good)
    _tar(path, [*entries, entries[-1]])
    with pytest.raises(archive.ArchiveError, match="twice"):
        archive.read(path)


def test_a_missing_member_is_refused(good, tmp_path):
    path = tmp_path / "bad.tar.gz"
    _tar(path, [e for e in _members_of(good) if e[0].name != archive.DATA])
    with pytest.raises(archive.ArchiveError, match=f"lacks {archive.DATA}"):
        archive.read(path)


def test_a_member_over_its_limit_is_refused_before_it_is_read(tmp_path):
    """A header that claims 3 GiB, followed by nothing: refused from the header alone."""
    info = tarfile.TarInfo(archive.DATA)
    info.size = 3 * 1024**3
    path = tmp_path / "huge.tar.gz"
    path.write_bytes(gzip.compress(info.tobuf(tarfile.PAX_FORMAT) + b"[]"))
    with pytest.raises(archive.ArchiveError, match="more than the 2048 MiB"):
        archive.read(path)


def test_a_stream_that_decompresses_past_the_cap_is_stopped():
    bomb = gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(b"\0" * 100_000)))
    capped = archive._Capped(bomb, 1000)
    with pytest.raises(archive.ArchiveError, match="decompresses to more than"):
        while capped.read(300):
            pass


@pytest.mark.parametrize(
    "content",
    [b"", b"plain text", gzip.compress(b"not a tar at all" * 100), b"\x1f\x8b\x08\x00garbage"],
)
def test_a_file_that_is_not_a_gzipped_tar_is_refused(tmp_path, content):
    path = tmp_path / "x.tar.gz"
    path.write_bytes(content)
    with pytest.raises(archive.ArchiveError, match=r"not a Koyra backup|lacks"):
        archive.read(path)


def test_a_truncated_archive_is_refused(good, tmp_path):
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(archive.ArchiveError):
        archive.read(path)


def test_a_member_changed_after_writing_is_refused(good, tmp_path):
    path = tmp_path / "bad.tar.gz"
    entries = [
        _file(archive.DATA, b"[ ]") if m.name == archive.DATA else (m, b)
        for m, b in _members_of(good)
    ]
    _tar(path, entries)
    with pytest.raises(archive.ArchiveError, match="does not match its manifest"):
        archive.read(path)


def _with_manifest(good, tmp_path, body: bytes):
    path = tmp_path / "bad.tar.gz"
    entries = [
        _file(archive.MANIFEST, body) if m.name == archive.MANIFEST else (m, b)
        for m, b in _members_of(good)
    ]
    _tar(path, entries)
    return path


def _manifest_of(good) -> dict:
    return json.loads(dict((m.name, b) for m, b in _members_of(good))[archive.MANIFEST])


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"version": 2}, "version 2"),
        ({"version": True}, "version"),
        ({"format": "tarball"}, "not a Koyra backup"),
        ({"created": 5}, "created"),
        ({"migrations": {"apps": "0001_initial"}}, "migrations"),
        ({"counts": {"apps.app": -1}}, "counts"),
        ({"counts": {"apps.app": "1"}}, "counts"),
        ({"fernet_keys": ["the key itself=="]}, "fernet_keys"),
        ({"registry": None}, "registry"),
        ({"members": {archive.DATA: {"size": 2, "sha256": "x"}}}, "members"),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_refused(good, tmp_path, change, says):
    manifest = {**_manifest_of(good), **change}
    path = _with_manifest(good, tmp_path, json.dumps(manifest).encode())
    with pytest.raises(archive.ArchiveError, match=says):
        archive.read(path)


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"[" * 100_000, b"[]", b"null"])
def test_a_manifest_that_is_not_a_json_object_is_refused(good, tmp_path, body):
    path = _with_manifest(good, tmp_path, body)
    with pytest.raises(archive.ArchiveError, match=archive.MANIFEST):
        archive.read(path)
