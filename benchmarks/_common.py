"""Shared by the benchmark scripts: a throwaway Django setup on its own data dir, and the
writer that keeps one section per benchmark in BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup_django() -> None:
    from cryptography.fernet import Fernet

    os.environ.setdefault("KOYRA_DATA_DIR", tempfile.mkdtemp(prefix="koyra-bench-"))
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("KOYRA_FERNET_KEYS", Fernet.generate_key().decode())
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koyra.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def write_section(name: str, body: str) -> None:
    """Replace (or add) the `## name` section of BENCHMARKS.md."""
    path = ROOT / "BENCHMARKS.md"
    text = (
        path.read_text()
        if path.exists()
        else (
            "# Benchmarks\n\nEach section is written by the script it names "
            "(`make bench` runs them all). Numbers are from the machine that ran them.\n"
        )
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    section = f"## {name}\n\n_{stamp} · {machine}_\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(section + "\n", text)
        if pattern.search(text)
        else (text.rstrip() + "\n\n" + section)
    )
    path.write_text(text.rstrip() + "\n")
    print(section)


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]
