"""Shared by the benchmark scripts: a throwaway Django setup on its own data dir, and the
writer that keeps one section per benchmark in BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
import subprocess
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
    # The benchmarks' apps are git repositories made on this machine (file:// URLs).
    os.environ.setdefault("KOYRA_ALLOW_FILE_REPOS", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koyra.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def git(repo: Path, *args: str) -> str:
    """git in `repo` as a fixed author, its output stripped; raises when it fails."""
    names = ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")
    mails = ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")
    env = {**os.environ, **dict.fromkeys(names, "b"), **dict.fromkeys(mails, "b@example.com")}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def keep_registry_login() -> None:
    """Call before cluster.cluster_bootstrap. The engine is shared with whatever else runs on
    it (a test suite, `make run`): bootstrapping with this run's fresh login would re-key the
    running registry under them, and their pushes would fail with 401. So the login the
    running registry takes is copied into this run's data dir when it is found on this
    machine; if not, say so (the registry is re-keyed, as any new control plane would)."""
    import json
    import shutil

    from deployments import cluster, registry_auth
    from deployments.boundaries import engine, registry

    attrs = engine.service_get(cluster.REGISTRY_SERVICE)
    if not attrs:
        return
    spec = attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    mounted = {x.get("SecretName") for x in spec.get("Secrets") or []}
    candidates = [*ROOT.glob("data/**/registry-auth.json"), *Path("/tmp").glob("*/data/*/")]
    for path in candidates:
        path = path / "registry-auth.json" if path.is_dir() else path
        try:
            creds = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(creds, dict) and registry_auth.secret_name(creds) in mounted:
            shutil.copyfile(path, registry.auth_path())
            registry.auth_path().chmod(0o600)
            return
    print(
        "benchmark: the running registry's login is not on this machine: bootstrapping "
        "re-keys the registry (a test run using it sees 401 until it bootstraps again)",
        file=sys.stderr,
    )


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
