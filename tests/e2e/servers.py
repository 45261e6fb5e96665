"""Real server processes for the e2e suite: the web side under daphne, as in production."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT, _subprocess_env, http_get, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def daphne(django_db_setup, tmp_path_factory):
    """daphne as Koyra starts it (`python -m koyra.serve ... koyra.asgi:application`) on a free
    port and the test database; its base URL."""
    port = free_port()
    logfile = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with open(logfile, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "koyra.serve",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "koyra.asgi:application",
            ],
            cwd=ROOT,
            env=_subprocess_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            return True  # no point waiting: reported below
        return http_get(f"{url}/webhooks/github/-/", timeout=2)[0] == 405  # GET: any answer

    try:
        wait_for(up, 60, "daphne to answer", interval=0.2)
        if proc.poll() is not None:
            pytest.fail(f"daphne exited {proc.returncode}:\n{logfile.read_text()[-4000:]}")
    except BaseException:
        proc.kill()
        raise
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
