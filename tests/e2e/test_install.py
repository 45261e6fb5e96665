"""`make install` (scripts/install.sh) on the real engine: Koyra as its own Swarm stack, built
here from a Debian made with debootstrap (nothing is pulled), answering behind the shared
Traefik. Then its dashboard and worker containers are killed: Swarm brings them back, the
deploy queued while the worker was dead goes live, and a later deploy goes live too. Last the
engine itself restarts, as on a reboot: the stack comes back with its database, and a deploy
queued straight away goes live.

The stack has its own name, Redis, PostgreSQL and keys, so its worker never takes the suite's
jobs; it shares the suite's registry (with the suite's login) and Traefik, as an install on
a server shares them with the apps."""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.e2e.conftest import ROOT, httpd_app, via_traefik, wait_for
from tests.e2e.restart import restart_engine

# It restarts the engine every test shares: it runs last (tests/e2e/conftest.py).
pytestmark = [pytest.mark.e2e, pytest.mark.engine_restart]


def _install_env(stack: str, keys_dir: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "KOYRA_FERNET_KEYS", "DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        KOYRA_STACK=stack,
        KOYRA_HOST=f"{stack}.koyra.test",
        KOYRA_INSTALL_DIR=keys_dir,
        KOYRA_ALLOW_FILE_REPOS="1",
        KOYRA_PRUNE_EVERY_HOURS="0",
        # The suite's cluster: its registry login (in its data dir), Traefik port and images.
        KOYRA_DATA_DIR=str(settings.KOYRA_DATA_DIR),
        KOYRA_HTTP_PORT=str(settings.KOYRA_HTTP_PORT),
        KOYRA_REGISTRY=settings.KOYRA_REGISTRY,
        KOYRA_REGISTRY_IMAGE=settings.KOYRA_REGISTRY_IMAGE,
        KOYRA_TRAEFIK_IMAGE=settings.KOYRA_TRAEFIK_IMAGE,
    )
    return env


class Stack:
    def __init__(self, name: str, docker_client) -> None:
        self.name = name
        self.host = f"{name}.koyra.test"
        self.docker = docker_client

    def container(self, service: str):
        """The running container of the service's current task (None while there is none)."""
        found = self.docker.containers.list(
            filters={"label": f"com.docker.swarm.service.name={self.name}_{service}"}
        )
        return found[0] if found else None

    def manage(self, *args: str) -> str:
        """`python manage.py ...` in the dashboard's container, as an operator would."""
        c = wait_for(lambda: self.container("dashboard"), 120, "a dashboard container")
        res = c.exec_run(["python", "manage.py", *args])
        out = res.output.decode(errors="replace")
        assert res.exit_code == 0, f"manage.py {' '.join(args)}: {out}"
        return out

    def manage_once_up(self, *args: str, timeout: float = 240) -> str:
        """`manage` once the stack answers it (after a restart its database and dashboard come
        back in any order); a command that failed changed nothing, so it is run again."""
        tried: list[str] = []

        def attempt() -> str | None:
            c = self.container("dashboard")
            if c is None:
                return None
            res = c.exec_run(["python", "manage.py", *args])
            tried.append(res.output.decode(errors="replace")[-300:])
            return res.output.decode(errors="replace") if res.exit_code == 0 else None

        try:
            return wait_for(attempt, timeout, f"manage.py {' '.join(args)}", interval=2)
        except AssertionError:
            raise AssertionError(f"manage.py {' '.join(args)} never worked: {tried[-1:]}") from None

    def put_repo(self, repo, name: str) -> str:
        """The sample repository, copied into the stack's data volume (file:// repositories are
        paths on the Koyra server, which is the worker's container here)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(repo.path, arcname=f"repos/{name}")
        worker = wait_for(lambda: self.container("worker"), 120, "a worker container")
        worker.exec_run(["rm", "-rf", f"/data/repos/{name}"])
        assert worker.put_archive("/data", buf.getvalue())
        return f"file:///data/repos/{name}"

    def deploys(self, app: str) -> list[dict]:
        return json.loads(self.manage("list_deploys", app, "--json"))


@pytest.fixture
def installed(cluster_ready, docker_client, tmp_path):
    stack = f"kt{secrets.token_hex(3)}"
    env = _install_env(stack, str(tmp_path / "keys"))
    started = time.monotonic()
    try:
        done = subprocess.run(
            ["bash", "scripts/install.sh"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        print(f"install took {time.monotonic() - started:.0f} s")
        # The admin's one-time password reaches the installing operator, never a log.
        assert "Created the user 'admin'" in done.stdout
        yield Stack(stack, docker_client)
    finally:
        image = None
        with_image = docker_client.services.list(filters={"name": f"{stack}_dashboard"})
        if with_image:
            image = with_image[0].attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        subprocess.run(
            ["bash", "scripts/install.sh", "--uninstall", "--purge"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=300,
        )
        if image:
            subprocess.run(["docker", "image", "rm", image], capture_output=True)


def _dashboard_answers(stack: Stack) -> bool:
    status, body = via_traefik(stack.host, "/accounts/login/")
    return status == 200 and "Koyra" in body


def test_install_survives_killed_tasks_and_keeps_the_queue(
    installed, unique_name, make_repo, cluster_ready
):
    stack = installed
    wait_for(lambda: _dashboard_answers(stack), 120, "the installed dashboard behind Traefik")
    name = unique_name("inst")
    domain = f"{name}.koyra.test"
    repo = make_repo()
    repo.commit(httpd_app(cluster_ready["base"], "v1"))
    url = stack.put_repo(repo, name)
    stack.manage("create_app", name, "--repo", url, "--domain", domain)

    # The idle worker is killed and a deploy queued while it is down (Swarm waits 3 s before
    # it starts a new task, which then needs seconds to listen); then the dashboard is killed.
    old_worker = stack.container("worker")
    old_worker.kill()
    stack.manage("deploy", name)
    old_dashboard = stack.container("dashboard")
    old_dashboard.kill()

    # Swarm starts new tasks; the queued deploy is taken up and goes live.
    wait_for(lambda: _dashboard_answers(stack), 180, "the dashboard to answer again")
    new_worker = wait_for(lambda: stack.container("worker"), 120, "a new worker")
    assert new_worker.id != old_worker.id
    assert stack.container("dashboard").id != old_dashboard.id
    wait_for(lambda: via_traefik(domain) == (200, "v1\n"), 240, "the queued deploy to serve")
    (first,) = stack.deploys(name)
    assert first["status"] == "live", first

    # A deploy after the restarts goes live as well.
    repo.commit({"index.html": "v2\n"})
    stack.put_repo(repo, name)
    stack.manage("deploy", name, "--wait")
    assert via_traefik(domain) == (200, "v2\n")
    latest = stack.deploys(name)[0]
    assert latest["status"] == "live" and latest["id"] != first["id"], latest

    # The engine restarts (a reboot): the stack comes back by itself with its database, the
    # app serves again, and a deploy queued as soon as the dashboard is back (before the
    # worker, the registry and Traefik answer, maybe) is not lost: it goes live.
    repo.commit({"index.html": "v3\n"})
    stack.put_repo(repo, name)
    restarted = time.monotonic()
    restart_engine(Path(settings.KOYRA_DATA_DIR) / "dockerd.log")
    stack.manage_once_up("deploy", name)
    wait_for(lambda: via_traefik(domain) == (200, "v3\n"), 300, "v3 after the engine restart")
    wait_for(lambda: _dashboard_answers(stack), 120, "the dashboard after the engine restart")
    # Serving comes a moment before `live` (the stability window): wait for the status too.
    after = wait_for(
        lambda: (ds := stack.deploys(name))[0]["status"] == "live" and ds, 120, "v3 to be live"
    )
    assert [d["id"] for d in after[1:]] == [latest["id"], first["id"]], after
    print(f"engine restart to v3 serving: {time.monotonic() - restarted:.0f} s")
