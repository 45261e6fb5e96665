"""Restarting the Docker engine every e2e test shares, the way the machine runs it: by systemd
when systemd runs it, else as scripts/lib.sh starts it. A test that calls this carries the
marker `engine_restart` (tests/e2e/conftest.py runs those last)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.e2e.conftest import wait_for

PIDFILE = Path("/var/run/docker.pid")


def engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def restart_engine(log: Path) -> None:
    if Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "restart", "docker"], check=True)
    else:
        pid = int(PIDFILE.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 90, "dockerd to stop")
        with log.open("ab") as out:  # as scripts/lib.sh does: its own session, no inherited fds
            subprocess.Popen(
                ["dockerd"], stdout=out, stderr=out, start_new_session=True, close_fds=True
            )
    wait_for(engine_answers, 90, "the engine to answer again", interval=1)
