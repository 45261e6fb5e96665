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


# The settings the tests below read, each from `env` alone, not from the suite's own
# environment (scripts/test.sh sets KOYRA_HTTP_PORT, KOYRA_ALLOW_FILE_REPOS, KOYRA_BASE_URL).
_READ = {
    "problems": "s.KOYRA_SETTINGS_PROBLEMS",
    "keep": "s.KOYRA_KEEP_RELEASES",
    "port": "s.KOYRA_HTTP_PORT",
    "debug": "s.DEBUG",
    "files": "s.KOYRA_ALLOW_FILE_REPOS",
    "base": "s.KOYRA_BASE_URL",
    "secure": "getattr(s, 'SESSION_COOKIE_SECURE', False)",
    "level": "s.LOGGING['root']['level']",
}
_NAMES = {
    "KOYRA_KEEP_RELEASES",
    "KOYRA_HTTP_PORT",
    "DEBUG",
    "KOYRA_ALLOW_FILE_REPOS",
    "KOYRA_BASE_URL",
    "LOG_LEVEL",
}


def _read_settings(**env: str) -> dict:
    fields = ", ".join(f"{k!r}: {v}" for k, v in _READ.items())
    read = f"import json; from koyra import settings as s; print(json.dumps({{{fields}}}))"
    base = {k: v for k, v in os.environ.items() if k.removesuffix("_FILE") not in _NAMES}
    out = subprocess.run(
        [sys.executable, "-c", read], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"keep": 10, "port": 80, "debug": False, "files": False}),
        ({"KOYRA_KEEP_RELEASES": "0", "KOYRA_HTTP_PORT": " 8080\n"}, {"keep": 0, "port": 8080}),
        ({"KOYRA_KEEP_RELEASES": "", "DEBUG": ""}, {"keep": 10, "debug": False}),
        ({"DEBUG": "Yes", "KOYRA_ALLOW_FILE_REPOS": " on "}, {"debug": True, "files": True}),
        ({"DEBUG": "OFF", "KOYRA_ALLOW_FILE_REPOS": "0"}, {"debug": False, "files": False}),
        ({"KOYRA_HTTP_PORT": "65535"}, {"port": 65535}),
    ],
)
def test_numbers_and_switches_in_their_forms(env, expected):
    read = _read_settings(**env)
    assert read["problems"] == []
    assert {k: read[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KOYRA_KEEP_RELEASES", "-1"),
        ("KOYRA_KEEP_RELEASES", "ten"),
        ("KOYRA_KEEP_RELEASES", "1.5"),
        ("KOYRA_KEEP_RELEASES", "1e3"),
        ("KOYRA_KEEP_RELEASES", "٣"),  # a digit to Python's int(), not to a person
        ("KOYRA_KEEP_RELEASES", "1_000"),
        ("KOYRA_KEEP_RELEASES", "9" * 40),
        ("KOYRA_HTTP_PORT", "0"),
        ("KOYRA_HTTP_PORT", "65536"),
        ("KOYRA_HTTP_PORT", "80 443"),
        ("DEBUG", "ture"),
        ("KOYRA_ALLOW_FILE_REPOS", "2"),
    ],
)
def test_a_value_a_setting_does_not_take_is_named_with_what_it_takes(name, value):
    read = _read_settings(**{name: value})
    [problem] = read["problems"]
    assert problem.startswith(f"{name} is {value!r}; it takes ")
    # the default stands in until the check refuses the start
    assert (read["keep"], read["port"], read["debug"], read["files"]) == (10, 80, False, False)


@pytest.mark.parametrize("command", ["check", "worker"])
def test_check_and_the_worker_refuse_to_start_with_koyra_e004(command, tmp_path):
    env = {**os.environ, "KOYRA_ROLLOUT_TIMEOUT": "5m", "KOYRA_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "manage.py", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a worker that started would not return
    )
    assert out.returncode != 0
    assert "koyra.E004" in out.stderr and "KOYRA_ROLLOUT_TIMEOUT is '5m'" in out.stderr
    assert "from 1 to 1000000000" in out.stderr and "Fix the value or unset it" in out.stderr


@pytest.mark.parametrize(
    ("value", "expected", "secure"),
    [
        ("https://koyra.example.com", "https://koyra.example.com", True),
        ("HTTPS://Koyra.Example.com:8443/", "https://Koyra.Example.com:8443", True),
        (" http://10.0.0.5:8000/koyra/ ", "http://10.0.0.5:8000/koyra", False),
        ("http://[::1]:8000", "http://[::1]:8000", False),
    ],
)
def test_the_base_url_in_its_forms(value, expected, secure):
    read = _read_settings(KOYRA_BASE_URL=value)
    assert (read["problems"], read["base"], read["secure"]) == ([], expected, secure)


@pytest.mark.parametrize(
    "value",
    [
        "koyra.example.com",  # no scheme: GitHub would be given a URL it cannot use
        "ftp://koyra.example.com",
        "https://",
        "https://koyra.example.com:99999",
        "https://koyra.example.com:port",
        "https://koyra.example.com/?next=/",
        "https://koyra .example.com",
    ],
)
def test_a_base_url_that_is_no_address_is_named(value):
    read = _read_settings(KOYRA_BASE_URL=value)
    [problem] = read["problems"]
    assert problem.startswith(f"KOYRA_BASE_URL is {value!r}; it takes the address Koyra is ")
    assert read["base"] == "http://127.0.0.1:8000"


def test_a_base_url_with_a_password_is_refused_without_showing_it():
    value = "https://koyra:s3cr3t-pw@koyra.example.com"
    read = _read_settings(KOYRA_BASE_URL=value)
    [problem] = read["problems"]
    assert problem.startswith("KOYRA_BASE_URL is 'https://...@koyra.example.com'; it takes ")
    assert "s3cr3t" not in problem and "koyra:" not in problem


@pytest.mark.parametrize(
    ("value", "expected"), [("info", "INFO"), (" Debug ", "DEBUG"), ("WARNING", "WARNING")]
)
def test_log_level_in_any_case(value, expected):
    read = _read_settings(LOG_LEVEL=value)
    assert (read["problems"], read["level"]) == ([], expected)


@pytest.mark.parametrize("value", ["verbose", "10", "warn "])
def test_a_log_level_logging_does_not_know_is_named_not_a_traceback(value):
    read = _read_settings(LOG_LEVEL=value)
    [problem] = read["problems"]
    assert problem.startswith(f"LOG_LEVEL is {value!r}; it takes one of DEBUG, INFO")
    assert read["level"] == "INFO"


@pytest.mark.parametrize("name", ["DATABASE_URL", "KOYRA_HTTP_PORT", "REDIS_URL", "DEBUG"])
@pytest.mark.parametrize("kind", ["missing", "a directory", "not text"])
def test_a_file_setting_that_cannot_be_read_is_named_not_a_traceback(tmp_path, name, kind):
    path = tmp_path / "value"
    if kind == "a directory":
        path.mkdir()
    elif kind == "not text":
        path.write_bytes(b"\xff\xfe\x00binary")
    env = {**os.environ, f"{name}_FILE": str(path)}
    env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "koyra.E004" in out.stderr
    assert f"{name}_FILE names {str(path)!r}, which cannot be read (" in out.stderr


def test_an_unreadable_database_url_file_never_falls_back_to_a_new_sqlite_database(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL_FILE": str(tmp_path / "gone"),
        "KOYRA_DATA_DIR": str(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    query = "from django.contrib.auth.models import User; print(User.objects.count())"
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", query],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "ImproperlyConfigured" in out.stderr
    assert not list(tmp_path.glob("*.sqlite3*"))
