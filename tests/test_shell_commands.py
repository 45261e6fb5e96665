"""The README's shell commands in a fresh shell: `python manage.py ...` from the checkout with
none of run.sh's environment (PATH, HOME and KOYRA_DATA_DIR only), reading the same keys
`make run` keeps under the data dir. No engine is needed: list_apps shows `?` for replicas
when it cannot ask one (DOCKER_HOST names no socket here, so the result does not depend on
the machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def shell(tmp_path):
    data = tmp_path / "data"  # not there yet: a new install
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "KOYRA_DATA_DIR": str(data),
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
    }

    def run(*argv: str, stdin: str = "", **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=ROOT,
            env={**env, **extra},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    run.data = data
    return run


def _ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    return res.stdout


def test_the_readme_commands_work_in_a_fresh_shell(shell):
    first = shell("migrate", "--noinput", "-v0")
    _ok(first)
    data = shell.data
    assert "fernet.keys - back it up" in first.stderr and "secret_key" in first.stderr
    for name in ("fernet.keys", "secret_key"):
        assert (data / name).stat().st_mode & 0o077 == 0
    created = json.loads(
        _ok(shell("create_app", "shop", "--repo", "https://github.com/acme/shop.git", "--json"))
    )
    assert created["name"] == "shop" and created["webhook_secret"]
    _ok(shell("set_secret", "shop", "DATABASE_URL", stdin="postgres://u:pw-in-stdin@db/x"))
    assert "shop has no deploys yet" in _ok(shell("list_deploys", "shop"))
    [row] = json.loads(_ok(shell("list_apps", "--json")))
    assert row["name"] == "shop" and row["serving"] is None and row["replicas"] is None
    assert _ok(shell("list_apps")).split()[0] == "shop"
    # The secret was encrypted with the data dir's key: it re-encrypts with that key, and a
    # key given in the environment wins over the file (and cannot read it).
    assert "1 secret(s)" in _ok(shell("rotate_keys"))
    other = "x" * 43 + "="
    wrong = shell("rotate_keys", KOYRA_FERNET_KEYS=other)
    assert wrong.returncode != 0 and "could not be re-encrypted" in wrong.stderr
    # No key is made twice: the same files, the same secret key for every command.
    assert "made a" not in shell("check").stderr


def test_a_missing_key_with_existing_data_says_where_and_never_to_make_one(shell):
    _ok(shell("migrate", "--noinput", "-v0"))
    key_file = shell.data / "fernet.keys"
    key = key_file.read_text()
    key_file.unlink()
    for argv in (["list_apps"], ["check"], ["set_secret", "shop", "K"]):
        res = shell(*argv, stdin="v")
        assert res.returncode == 1
        err = res.stderr
        assert "koyra.E001" in err and str(key_file) in err, err
        assert "generate_key" not in err and "Do not make a new key" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 8, err
    assert not key_file.exists()
    # The key put back where the message said: everything works again.
    key_file.write_text(key)
    _ok(shell("check"))
