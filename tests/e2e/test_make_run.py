"""`make run` as a new user runs it: the control plane comes up, login page within 90 s, the
admin lists the five models, Ctrl-C stops web and worker."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest
from django.conf import settings

from deployments.boundaries import registry
from tests.e2e.conftest import ROOT, wait_for
from tests.e2e.servers import free_port

pytestmark = pytest.mark.e2e


def test_make_run_serves_login_and_admin_then_stops_cleanly(cluster_ready, tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KOYRA_FERNET_KEYS", "SECRET_KEY", "DATABASE_URL")
    }
    env.update(
        KOYRA_DATA_DIR=str(tmp_path / "data"),
        KOYRA_PORT=str(port),
        # Its own Redis database: its worker must not take the test worker's jobs.
        REDIS_URL=settings.REDIS_URL.rsplit("/", 1)[0] + "/14",
        KOYRA_REGISTRY_IMAGE=cluster_ready["registry"],
        KOYRA_TRAEFIK_IMAGE=cluster_ready["traefik"],
    )
    # The same cluster, so the same registry login: a new one would make bootstrap_cluster
    # restart the registry with it, and the test session's own pushes would be refused.
    (tmp_path / "data").mkdir()
    shutil.copy2(registry.auth_path(), tmp_path / "data" / registry.auth_path().name)
    out = open(tmp_path / "run.log", "w+")  # noqa: SIM115 (read back in finally)
    started = time.monotonic()
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def login_page():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as r:
                return r.status == 200 and "Log in" in r.read().decode() and r.url

        url = wait_for(login_page, 90, "the login page")
        assert url.endswith("/accounts/login/?next=/apps/")
        assert time.monotonic() - started < 90
        log = (tmp_path / "run.log").read_text()
        assert "fernet.keys - back it up" in log
        password = re.search(r"Created the user 'admin' with password: (\S+)", log).group(1)
        assert (tmp_path / "data" / "fernet.keys").stat().st_mode & 0o077 == 0

        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        login_url = f"http://127.0.0.1:{port}/admin/login/"
        page = opener.open(login_url).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode(
            {
                "username": "admin",
                "password": password,
                "csrfmiddlewaretoken": token,
                "next": "/admin/",
            }
        ).encode()
        req = urllib.request.Request(login_url, data=data, headers={"Referer": login_url})
        admin = opener.open(req).read().decode()
        for model in ("Apps", "Deploys", "Images", "Webhook deliveries", "Secrets"):
            assert f">{model}<" in admin, model
        assert "Site administration" in admin
        static = opener.open(f"http://127.0.0.1:{port}/static/admin/css/base.css")
        assert static.status == 200
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            out.seek(0)
            tail = out.read()[-3000:]
            out.close()
    assert "stopped" in tail, tail
    time.sleep(1)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
