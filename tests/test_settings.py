"""koyra/settings.py read fresh in a subprocess, as each command reads it at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READ = (
    "import json; from koyra import settings as s; d = s.DATABASES['default']; "
    "print(json.dumps({k: d[k] for k in ('ENGINE', 'NAME', 'USER', 'PASSWORD', 'HOST', 'PORT')}))"
)
PG = "django.db.backends.postgresql"


def _database(url: str) -> dict:
    env = {**os.environ, "DATABASE_URL": url}
    out = subprocess.run(
        [sys.executable, "-c", READ], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgres://koyra:s%40cret@db.example.com:5433/koyra",
            [PG, "koyra", "koyra", "s@cret", "db.example.com", 5433],
        ),
        ("postgresql://koyra@127.0.0.1/koyra", [PG, "koyra", "koyra", "", "127.0.0.1", ""]),
        # A unix socket directory, quoted as libpq writes it: case and slashes kept.
        (
            "postgres://koyra@%2Frun%2FPostgreSQL/koyra",
            [PG, "koyra", "koyra", "", "/run/PostgreSQL", ""],
        ),
        (
            "postgres://koyra:pw@%2ftmp%2fkoyra-pg.Ab12:5432/koyra",
            [PG, "koyra", "koyra", "pw", "/tmp/koyra-pg.Ab12", 5432],
        ),
        ("postgres:////run/postgresql/koyra", [PG, "koyra", "", "", "/run/postgresql", ""]),
        (
            "sqlite:////tmp/k.sqlite3",
            ["django.db.backends.sqlite3", "/tmp/k.sqlite3", "", "", "", ""],
        ),
    ],
)
def test_every_form_of_database_url_reaches_django(url, expected):
    keys = ["ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT"]
    assert _database(url) == dict(zip(keys, expected, strict=True))
