"""koyra/serve.py: daphne, started as Koyra starts it, serves Koyra without pyOpenSSL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests import serve_probe

ROOT = Path(__file__).resolve().parents[1]
TLS_ONLY = ("OpenSSL", "service_identity", "twisted.protocols.tls", "twisted.internet.ssl")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Says it is multipart but is not: Twisted, parsing POST bodies itself, refuses it with a 400
# before the application sees it; with its parsing off the body reaches the application.
NOT_MULTIPART = b"this is not a multipart body" * 100


def _post_not_multipart(base: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"{base}{serve_probe.ECHO}",
        data=NOT_MULTIPART,
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _serve(argv: list[str], tmp_path: Path) -> tuple[list[str], int, tuple[int, bytes]]:
    """Start a server with the probe app, load Koyra's login page through it, post a body
    that says it is multipart and is not, then ask the process for its modules: (module
    names, status of the login page, status and answer of the post)."""
    port = _free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "KOYRA_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "koyra.settings",
    }
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*argv, "-b", "127.0.0.1", "-p", str(port), "tests.serve_probe:application"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/accounts/login/", timeout=5) as r:
                    status = r.status
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the server did not answer:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        posted = _post_not_multipart(base)
        with urllib.request.urlopen(f"{base}{serve_probe.PATH}", timeout=5) as r:
            return json.loads(r.read()), status, posted
    finally:
        proc.terminate()
        proc.wait(15)


def test_it_serves_koyra_without_the_tls_libraries(tmp_path):
    modules, status, posted = _serve([sys.executable, "-m", "koyra.serve"], tmp_path)
    assert status == 200
    # The body reached the application whole: Twisted did not parse it first.
    assert posted == (200, str(len(NOT_MULTIPART)).encode())
    assert "twisted.internet.tcp" in modules and "daphne.server" in modules
    assert "koyra.asgi" in modules
    assert [m for m in modules if m.split(".")[0] in TLS_ONLY or m in TLS_ONLY] == []


def test_plain_daphne_loads_them_which_is_what_the_launcher_avoids(tmp_path):
    # The control: the probe sees pyOpenSSL when nothing blocks it (if Twisted ever stops
    # importing it, koyra/serve.py has nothing left to do and this says so).
    modules, status, posted = _serve([str(Path(sys.executable).with_name("daphne"))], tmp_path)
    assert status == 200
    assert "OpenSSL" in modules and "service_identity" in modules
    # And Twisted parses POST bodies itself: this one it refuses before the application.
    assert posted[0] == 400


def test_the_web_process_freezes_what_it_loaded_at_start():
    # koyra/asgi.py: Django and the rest, loaded at start, are out of the collector's sight.
    code = "import gc, koyra.asgi; print(gc.get_freeze_count())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert int(out.stdout.split()[-1]) > 20_000


def test_it_refuses_to_run_once_pyopenssl_is_imported(monkeypatch):
    from koyra import serve

    monkeypatch.setitem(sys.modules, "OpenSSL", sys)  # any module object: "already imported"
    with pytest.raises(RuntimeError, match="OpenSSL was imported before"):
        serve.main(["--help"])
