"""`make install` (scripts/install.sh) on the real engine: Koyra as its own Swarm stack, built
here from a Debian made with debootstrap (nothing is pulled), answering behind the shared
Traefik. Then its dashboard and worker containers are killed (the engine itself is shared
with the rest of the suite, so it is not restarted here): Swarm brings them back, the deploy
queued while the worker was dead goes live, and a later deploy goes live too.

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

import pytest
from django.conf import settings

from tests.e2e.conftest import ROOT, httpd_app, via_traefik, wait_for

pytestmark = pytest.mark.e2e


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
