"""koyra/settings.py read fresh in a subprocess, as each command reads it at start."""

from __future__ import annotations

import importlib
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


def test_the_channel_layer_is_redis_pub_sub_at_the_configured_url_with_a_bounded_wait():
    """Pub/sub: one PUBLISH a relayed batch (the list-based layer cost a script and three more
    round trips, each carrying the batch again). Its socket waits for Redis at most 15 s,
    longer than the subscriber's own 0.1 s poll: a worker never hangs on a relay."""
    from channels_redis.pubsub import RedisPubSubChannelLayer
    from channels_redis.utils import decode_hosts

    read = "import json; from koyra import settings as s; print(json.dumps(s.CHANNEL_LAYERS))"
    env = {**os.environ, "REDIS_URL": "redis://:pw@redis.example:6380/4"}
    out = subprocess.run(
        [sys.executable, "-c", read], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    layer = json.loads(out.stdout)["default"]
    backend = layer["BACKEND"].rsplit(".", 1)
    assert getattr(importlib.import_module(backend[0]), backend[1]) is RedisPubSubChannelLayer
    (host,) = decode_hosts(layer["CONFIG"]["hosts"])
    assert host["address"] == "redis://:pw@redis.example:6380/4"
    assert 1 <= host["socket_timeout"] <= 15
