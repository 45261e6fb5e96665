"""Secrets end to end (SPEC §3): injected at container start and nowhere else; a token that
does not decrypt or a missing value fails the deploy with the old version serving; a secret
change is applied by a redeploy of the same digest. Real worker, engine, Swarm, registry."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

from apps import services as app_services
from deployments import services
from deployments.boundaries import engine
from deployments.models import Deploy
from secrets_vault import services as vault
from secrets_vault.models import Secret
from tests.e2e.conftest import wait_deploy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ENV_FILE = "/tmp/app-env.txt"
MANIFEST = """\
version: 1
build:
  args: {BUILD_FLAVOR: e2e}
env:
  LOG_LEVEL: info
secrets: [API_TOKEN]
release:
  - echo token=$API_TOKEN
run:
  port: 8000
  healthcheck: {path: /index.html, interval: 1, timeout: 1, retries: 2, start_period: 0}
"""


def _files(base: str, name: str, text: str) -> dict[str, str]:
    """busybox httpd; `RUN env` prints the build environment into the build log (the app's
    name in that step keeps the layer cache from skipping it), and the app (a child of the
    start wrapper, which is PID 1) writes its own environment to a file and prints the secret
    on stdout, which Koyra copies into the deploy log (redacted)."""
    dockerfile = (
        f"FROM {base}\n"
        "RUN mkdir -p /www\n"
        "ARG BUILD_FLAVOR\n"
        f"RUN echo build environment of {name} && env\n"
        "COPY index.html /www/index.html\n"
        f'CMD ["sh", "-c", "env > {ENV_FILE}; echo app-start API_TOKEN=$API_TOKEN; '
        'exec httpd -f -p 8000 -h /www"]\n'
    )
    return {"Dockerfile": dockerfile, "index.html": f"{text}\n", ".paas/app.yaml": MANIFEST}


def _value() -> str:
    return f"vault-e2e-{secrets.token_hex(12)}"


@pytest.fixture
def vault_app(worker, cluster_ready, unique_name, make_repo):
    """An app whose manifest needs API_TOKEN; v1 committed, nothing deployed yet."""
    name = unique_name("vault")
    repo = make_repo()
    repo.commit(_files(cluster_ready["base"], name, "v1"), "v1")
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    return app, repo


def _deploy(app) -> Deploy:
    return wait_deploy(services.deploy_create(app=app, trigger="manual"))


def _task_container(docker_client, app, deploy: Deploy):
    """The running task container of this deploy (the old one may still be draining)."""

    def find():
        found = docker_client.containers.list(
            filters={"label": [f"koyra.app={app.name}", f"koyra.deploy={deploy.pk}"]}
        )
        return found[0] if len(found) == 1 else None

    return wait_for(find, 30, f"the task container of deploy #{deploy.pk}")


def _app_env(container) -> dict[str, str]:
    res = container.exec_run(["cat", ENV_FILE])
    assert res.exit_code == 0, res.output
    return dict(line.split("=", 1) for line in res.output.decode().splitlines() if "=" in line)


def _service_image(app) -> str:
    attrs = engine.service_get(app.service_name)
    assert attrs is not None, f"no service {app.service_name}"
    return attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]


def _running_images(app) -> set[str]:
    tasks = engine.service_tasks(app.service_name)
    return {
        t["Spec"]["ContainerSpec"]["Image"]
        for t in tasks
        if t["DesiredState"] == "running" and t["Status"]["State"] == "running"
    }


def _database_bytes() -> bytes:
    """The database file and its WAL, read by another process: closing any descriptor of the
    file in this process would drop SQLite's POSIX locks here (they are per process, not per
    descriptor), and another connection would then checkpoint and delete the WAL this
    process still writes to; its later rows would be lost to everyone else."""
    path = Path(settings.DATABASES["default"]["NAME"])
    parts = [str(p) for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]
    return subprocess.run(["cat", *parts], capture_output=True, check=True).stdout


def test_a_secret_reaches_the_app_and_nothing_else(vault_app, docker_client):
    app, _repo = vault_app
    value = _value()
    vault.secret_set(app=app, key="API_TOKEN", value=value)
    d = _deploy(app)
    assert d.status == Deploy.Status.LIVE, d.log_text

    # In the app's own environment (the wrapper exported it from Swarm's tmpfs file)...
    container = _task_container(docker_client, app, d)
    env = _app_env(container)
    assert env["API_TOKEN"] == value
    assert env["LOG_LEVEL"] == "info"
    # ...but not in the container's configuration.
    assert value not in json.dumps(docker_client.api.inspect_container(container.id))

    # Not in any log line: the release step printed it, redacted before it was stored.
    log = d.log_text
    assert "token=****" in log  # the release step's echo
    assert "app-start API_TOKEN=****" in log  # the task's own output
    build = log.split("==> build", 1)[1].split("==> push", 1)[0]
    assert "BUILD_FLAVOR=e2e" in build  # `RUN env` printed the build environment...
    # ...and runtime config was not part of it (lines of `env` output start with the name).
    assert "\nAPI_TOKEN=" not in build and "\nLOG_LEVEL=" not in build
    assert value not in log and value not in d.error

    # Not in the image: layers' history, config, labels.
    history = docker_client.api.history(d.image.ref)
    assert any(f"of {app.name} && env" in (h.get("CreatedBy") or "") for h in history)
    assert value not in json.dumps(history)
    assert value not in json.dumps(docker_client.api.inspect_image(d.image.ref))

    # Not in the service spec (env, labels, the start wrapper's command); only a reference.
    service = docker_client.api.inspect_service(app.service_name)
    container_spec = service["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert "LOG_LEVEL=info" in container_spec["Env"]
    assert not any(e.startswith("API_TOKEN=") for e in container_spec["Env"])
    assert [s["File"]["Name"] for s in container_spec["Secrets"]] == ["koyra-API_TOKEN"]
    assert value not in json.dumps(service)
    swarm_secrets = docker_client.secrets.list(filters={"label": f"koyra.app={app.name}"})
    assert value not in json.dumps([s.attrs for s in swarm_secrets])
    assert value not in json.dumps(d.spec)

    # Not in the database file, nor its write-ahead log.
    db = _database_bytes()
    assert value.encode() not in db
    assert Secret.objects.get(app=app, key="API_TOKEN").token.encode() in db  # the right file


def test_a_token_under_a_wrong_key_fails_the_deploy_and_v1_keeps_serving(
    vault_app, docker_client, probe
):
    app, repo = vault_app
    value = _value()
    vault.secret_set(app=app, key="API_TOKEN", value=value)
    d1 = _deploy(app)
    assert d1.status == Deploy.Status.LIVE, d1.log_text

    foreign = Fernet(Fernet.generate_key()).encrypt(value.encode()).decode()
    Secret.objects.filter(app=app, key="API_TOKEN").update(token=foreign)
    repo.commit({"index.html": "v2\n"}, "v2")
    d2 = _deploy(app)

    assert d2.status == Deploy.Status.FAILED, d2.log_text
    assert "API_TOKEN" in d2.error and "KOYRA_FERNET_KEYS" in d2.error
    assert "decrypt" in d2.error
    assert "Step 1/" not in d2.log_text  # failed closed before the build
    assert value not in d2.log_text + d2.error and foreign not in d2.log_text + d2.error
    d1.refresh_from_db()
    assert d1.status == Deploy.Status.LIVE
    assert _service_image(app) == d1.image.pinned
    assert _running_images(app) == {d1.image.pinned}
    assert "v1" in probe.get(f"tasks.{app.service_name}", 8000, "/index.html")
    assert _app_env(_task_container(docker_client, app, d1))["API_TOKEN"] == value


def test_a_redeploy_applies_a_changed_secret_on_the_same_digest(vault_app, docker_client):
    app, _repo = vault_app
    first, second = _value(), _value()
    vault.secret_set(app=app, key="API_TOKEN", value=first)
    d1 = _deploy(app)
    assert d1.status == Deploy.Status.LIVE, d1.log_text
    assert _app_env(_task_container(docker_client, app, d1))["API_TOKEN"] == first

    vault.secret_set(app=app, key="API_TOKEN", value=second)
    r = wait_deploy(services.redeploy_create(app=app))

    assert r.status == Deploy.Status.LIVE, r.log_text
    assert r.image.digest == d1.image.digest
    assert "Step 1/" not in r.log_text and "build" not in r.stages
    assert first not in r.log_text and second not in r.log_text
    assert _app_env(_task_container(docker_client, app, r))["API_TOKEN"] == second
    assert _running_images(app) == {d1.image.pinned}

    # The version holding the old value goes once no task uses it: only the one the service
    # now mounts is left.
    spec = docker_client.api.inspect_service(app.service_name)["Spec"]["TaskTemplate"]
    [mounted] = [s["SecretName"] for s in spec["ContainerSpec"]["Secrets"]]

    def one_version_left():
        found = docker_client.secrets.list(filters={"label": f"koyra.app={app.name}"})
        return [s.name for s in found] == [mounted]

    wait_for(one_version_left, 60, "the old Swarm secret version to be removed")


def test_a_secret_with_no_value_fails_before_the_build(vault_app):
    app, _repo = vault_app
    d = _deploy(app)
    assert d.status == Deploy.Status.FAILED, d.log_text
    assert "API_TOKEN" in d.error
    assert "set_secret" in d.error and f"/apps/{app.name}/#secrets" in d.error
    assert "Step 1/" not in d.log_text and "build" not in d.stages
    assert engine.service_get(app.service_name) is None
    # Nothing is live, yet the app knows which secrets its manifest needs (the app page and
    # its settings list them as missing before the next deploy).
    assert d.manifest_secrets == ["API_TOKEN"]
    assert app_services.app_secrets_needed(app=app) == ["API_TOKEN"]
