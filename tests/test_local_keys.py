"""koyra/local_keys.py: where SECRET_KEY and the Fernet keys come from when the environment
does not give them, and when a new one may be made."""

from __future__ import annotations

import base64
import os
import random
import stat

import pytest

from koyra import local_keys
from secrets_vault import crypto

NAMES = ["SECRET_KEY", "KOYRA_FERNET_KEYS"]


def _make():
    return local_keys.new_fernet_key()


@pytest.mark.parametrize("name", NAMES)
def test_the_environment_wins_then_x_file_then_the_data_dir(name, tmp_path):
    (tmp_path / local_keys.FILES[name]).write_text("from-data-dir\n")
    named = tmp_path / "elsewhere"
    named.write_text("from-x-file\n")
    env = {name: "from-env", f"{name}_FILE": str(named)}
    assert local_keys.load(name, data_dir=tmp_path, make=_make, environ=env).value == "from-env"
    env.pop(name)
    key = local_keys.load(name, data_dir=tmp_path, make=_make, environ=env)
    assert (key.value, key.path) == ("from-x-file", str(named))
    key = local_keys.load(name, data_dir=tmp_path, make=_make, environ={})
    assert key.value == "from-data-dir" and key.problem == ""


@pytest.mark.parametrize("blank", ["", "  ", "\n"])
def test_a_blank_variable_counts_as_unset(blank, tmp_path):
    (tmp_path / "fernet.keys").write_text("k\n")
    env = {"KOYRA_FERNET_KEYS": blank, "KOYRA_FERNET_KEYS_FILE": blank}
    key = local_keys.load("KOYRA_FERNET_KEYS", data_dir=tmp_path, make=None, environ=env)
    assert key.value == "k"


@pytest.mark.parametrize("name", NAMES)
def test_a_new_install_gets_its_key_made_once_private_and_announced(name, tmp_path, capsys):
    first = local_keys.load(name, data_dir=tmp_path, make=_make, environ={})
    path = tmp_path / local_keys.FILES[name]
    assert first.value and first.path == str(path) and first.problem == ""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in capsys.readouterr().err
    again = local_keys.load(name, data_dir=tmp_path, make=_make, environ={})
    assert again.value == first.value
    assert capsys.readouterr().err == ""
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left


def test_a_made_fernet_key_is_one_the_vault_takes():
    assert all(crypto.key_is_valid(local_keys.new_fernet_key()) for _ in range(20))


def _key_shapes():
    """Keys right and wrong in every way a key file can be: good ones, standard rather than
    url-safe base64, 31/33 bytes, no or extra padding, junk, spaces and non-ASCII inside,
    cut and doubled, empty."""
    rng = random.Random(16)
    junk = " \t\n.!*~é€+/=-_"
    for _ in range(300):
        raw = rng.randbytes(rng.choice([0, 1, 16, 31, 32, 32, 32, 33, 48, 64]))
        key = base64.urlsafe_b64encode(raw).decode()
        yield key
        yield base64.b64encode(raw).decode()
        yield key.rstrip("=")
        yield key + "="
        yield key[: rng.randrange(len(key) + 1)]
        where = rng.randrange(len(key) + 1)
        yield key[:where] + rng.choice(junk) + key[where:]
        yield key + key


def test_the_key_check_without_cryptography_agrees_with_fernet():
    shapes = list(_key_shapes())
    verdicts = [(local_keys.fernet_key_is_valid(k), crypto.key_is_valid(k)) for k in shapes]
    assert [k for k, (ours, theirs) in zip(shapes, verdicts, strict=True) if ours != theirs] == []
    assert {ours for ours, _ in verdicts} == {True, False}  # both answers were exercised


@pytest.mark.parametrize("content", [None, "", "\n"])
def test_without_permission_to_make_one_nothing_is_made_and_the_place_is_named(content, tmp_path):
    path = tmp_path / "fernet.keys"
    if content is not None:
        path.write_text(content)
    key = local_keys.load("KOYRA_FERNET_KEYS", data_dir=tmp_path, make=None, environ={})
    assert key.value == "" and str(path) in key.problem
    assert ("is empty" if content is not None else "does not exist") in key.problem
    assert path.exists() is (content is not None)
    assert (path.read_text() if content is not None else None) == content


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_x_file_is_named_and_never_made(name, tmp_path):
    named = tmp_path / "mounted" / "key"
    env = {f"{name}_FILE": str(named)}
    key = local_keys.load(name, data_dir=tmp_path, make=_make, environ=env)
    assert key.value == "" and f"{name}_FILE names {named}" in key.problem
    assert list(tmp_path.iterdir()) == []


def test_an_empty_file_left_by_an_interrupted_first_run_is_replaced(tmp_path):
    (tmp_path / "secret_key").write_text("")
    key = local_keys.load("SECRET_KEY", data_dir=tmp_path, make=lambda: "fresh", environ={})
    assert key.value == "fresh" == (tmp_path / "secret_key").read_text().strip()


def test_a_key_another_process_made_first_is_the_one_used(tmp_path):
    path = tmp_path / "fernet.keys"
    path.write_text("theirs\n")  # between our read and our link
    assert local_keys._make("KOYRA_FERNET_KEYS", path, "ours") == "theirs"
    assert path.read_text() == "theirs\n"


def test_an_unwritable_data_dir_is_a_problem_not_a_crash(tmp_path):
    missing = tmp_path / "gone"
    key = local_keys.load("SECRET_KEY", data_dir=missing, make=_make, environ={})
    assert key.value == "" and "cannot be made" in key.problem and str(missing) in key.problem


def test_existing_data_is_the_sqlite_file_or_any_other_database(tmp_path):
    db = tmp_path / "koyra.sqlite3"
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db)}
    assert local_keys.existing_data(sqlite) == ""
    db.touch()
    assert str(db) in local_keys.existing_data(sqlite)
    postgres = {"ENGINE": "django.db.backends.postgresql", "NAME": "koyra"}
    assert "DATABASE_URL" in local_keys.existing_data(postgres)
