"""After the Docker engine restarts (a reboot, an upgrade), apps serve again and the next
deploy goes live: Koyra waits for its registry to answer instead of failing the push.

This restarts the engine every test shares, so it runs last (its marker: tests/e2e/conftest.py)
and leaves the engine as it found it: started the way scripts/lib.sh starts it, or by systemd
when systemd runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from apps import services as app_services
from deployments import services
from deployments.models import Deploy
from tests.e2e.conftest import httpd_app, via_traefik, wait_deploy, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.engine_restart,
    pytest.mark.django_db(transaction=True),
]

PIDFILE = Path("/var/run/docker.pid")
MANIFEST = """\
run:
  healthcheck: {{path: /index.html, interval: 1, timeout: 1, retries: 2, start_period: 0}}
  domains: [{host}]
"""


def _engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _restart_engine(log: Path) -> None:
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
    wait_for(_engine_answers, 90, "the engine to answer again", interval=1)


def test_after_an_engine_restart_apps_serve_and_the_next_deploy_goes_live(
    worker, cluster_ready, unique_name, make_repo, tmp_path
):
    name = unique_name("reboot")
    host = f"{name}.koyra.test"
    repo = make_repo()
    repo.commit(httpd_app(cluster_ready["base"], "v1", manifest=MANIFEST.format(host=host)), "v1")
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    d1 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d1.status == Deploy.Status.LIVE, d1.log_text
    wait_for(lambda: via_traefik(host) == (200, "v1\n"), 30, "v1 through Traefik")

    started = time.monotonic()
    _restart_engine(Path(settings.KOYRA_DATA_DIR) / "dockerd.log")
    # Straight away, before the registry's task is back: the deploy must wait for it.
    repo.commit({"index.html": "v2\n"}, "v2")
    d2 = wait_deploy(services.deploy_create(app=app, trigger="manual"), timeout=300)
    assert d2.status == Deploy.Status.LIVE, (d2.error, d2.log_text[-1500:])
    wait_for(lambda: via_traefik(host) == (200, "v2\n"), 120, "v2 through Traefik")
    print(f"engine restart to v2 serving: {time.monotonic() - started:.0f}s")
