from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from koyra import checks
from tests.secrets_vault.conftest import new_key

ROOT = Path(__file__).resolve().parents[2]


def _errors():
    return [e for e in checks.fernet_keys(None) if e.id == "koyra.E001"]


def test_no_key_is_koyra_e001(settings):
    settings.KOYRA_FERNET_KEYS = []
    settings.KOYRA_EXISTING_DATA = ""  # a new install whose key could not be made
    [error] = _errors()
    assert "KOYRA_FERNET_KEYS" in error.msg
    assert "Fernet.generate_key" in error.hint


@pytest.mark.parametrize("keys", [[], ["not-a-fernet-key"]], ids=["missing", "invalid"])
def test_with_existing_data_it_never_says_to_make_a_new_key(settings, keys):
    settings.KOYRA_FERNET_KEYS = keys
    settings.KOYRA_EXISTING_DATA = "the database /srv/koyra/koyra.sqlite3"
    settings.KOYRA_FERNET_KEYS_PATH = "/srv/koyra/fernet.keys"
    settings.KOYRA_FERNET_KEYS_PROBLEM = "KOYRA_FERNET_KEYS is not set and ... does not exist"
    [error] = _errors()
    assert "generate_key" not in error.hint
    assert "/srv/koyra/koyra.sqlite3" in error.hint and "/srv/koyra/fernet.keys" in error.hint
    assert "Do not make a new key" in error.hint


def test_an_invalid_key_is_koyra_e001_naming_its_position_not_its_value(settings):
    settings.KOYRA_FERNET_KEYS = [new_key(), "not-a-fernet-key"]
    [error] = _errors()
    assert "key number 2" in error.msg
    assert "not-a-fernet-key" not in error.msg + error.hint


def test_valid_keys_pass(settings):
    settings.KOYRA_FERNET_KEYS = [new_key(), new_key()]
    assert _errors() == []


def test_manage_py_check_fails_naming_the_setting(settings):
    settings.KOYRA_FERNET_KEYS = []
    with pytest.raises(SystemCheckError, match=r"koyra\.E001.*KOYRA_FERNET_KEYS"):
        call_command("check")


CHECK = ["manage.py", "check"]


def _run(argv: list[str], **env_changes: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "argv",
    [
        CHECK,
        ["manage.py", "worker"],  # the worker, as Koyra starts it
        ["manage.py", "rqworker", "deploys"],  # the same, through django_rq's command
        ["-c", "import koyra.asgi"],  # what daphne loads
    ],
    ids=["check", "worker", "rqworker", "asgi"],
)
def test_koyra_refuses_to_start_without_a_key(argv, tmp_path):
    # A data dir whose database exists: its secrets need the key they were made with, so
    # none is made (a new install gets one: tests/test_shell_commands.py).
    (tmp_path / "koyra.sqlite3").touch()
    res = _run(
        argv,
        KOYRA_FERNET_KEYS=None,
        KOYRA_FERNET_KEYS_FILE=None,
        DATABASE_URL=None,
        KOYRA_DATA_DIR=str(tmp_path),
    )
    assert res.returncode != 0
    assert "koyra.E001" in res.stderr and "KOYRA_FERNET_KEYS" in res.stderr
    assert str(tmp_path / "fernet.keys") in res.stderr
    assert not (tmp_path / "fernet.keys").exists()


def test_koyra_refuses_to_start_with_an_invalid_key_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text("definitely-not-a-key\n")
    res = _run(CHECK, KOYRA_FERNET_KEYS=None, KOYRA_FERNET_KEYS_FILE=str(path))
    assert res.returncode != 0
    assert "koyra.E001" in res.stderr
    assert "definitely-not-a-key" not in res.stderr + res.stdout


def test_a_key_file_is_enough(tmp_path):
    path = tmp_path / "keys"
    path.write_text(new_key() + "\n")
    res = _run(CHECK, KOYRA_FERNET_KEYS=None, KOYRA_FERNET_KEYS_FILE=str(path))
    assert res.returncode == 0, res.stderr
