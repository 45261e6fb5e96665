"""The registry lets in Koyra only (issue 11): from inside a running container of app A, every
way to the registry (the host's published port through the task's gateway, the registry's
name on the shared overlay network) answers 401 to listing, reading, writing and deleting B's
images; a build of A cannot pull B's image from it; and Koyra's login reaches no app."""

from __future__ import annotations

import contextlib
import json
import socket
import struct

import docker.errors
import pytest
from django.conf import settings

from apps import services as app_services
from deployments import cluster, services
from deployments.boundaries import engine, registry
from deployments.models import Deploy
from tests.e2e.conftest import httpd_app, wait_deploy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _deploy(name: str, repo, files: dict[str, str]) -> Deploy:
    repo.commit(files)
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    return wait_deploy(services.deploy_create(app=app, trigger="manual"))


def _gateway(container) -> str:
    """The task's default gateway (docker_gwbridge): where the host's published ports are."""
    out = container.exec_run(["cat", "/proc/net/route"]).output.decode()
    for line in out.splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            return socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
    raise AssertionError(f"no default route in the task: {out}")


def _http(container, host: str, port: int, method: str, path: str, body: str = "") -> str:
    """One HTTP/1.0 request from inside the container, with busybox nc; the whole answer."""
    req = f"{method} {path} HTTP/1.0\r\nHost: {host}:{port}\r\n"
    if body:
        req += "Content-Type: application/vnd.docker.distribution.manifest.v2+json\r\n"
        req += f"Content-Length: {len(body)}\r\n"
    req += f"\r\n{body}"
    script = 'printf "%s" "$REQ" | nc -w 5 "$HOST" "$PORT"'
    res = container.exec_run(
        ["sh", "-c", script], environment={"REQ": req, "HOST": host, "PORT": str(port)}
    )
    return res.output.decode(errors="replace")


def test_an_app_can_neither_read_write_nor_delete_another_apps_images(
    worker, cluster_ready, unique_name, make_repo, docker_client
):
    base = cluster_ready["base"]
    a, b = unique_name("rega"), unique_name("regb")
    db = _deploy(b, make_repo(), httpd_app(base, f"b-{b}"))
    assert db.status == Deploy.Status.LIVE, db.log_text
    repo_a = make_repo()
    da = _deploy(a, repo_a, httpd_app(base, f"a-{a}"))
    assert da.status == Deploy.Status.LIVE, da.log_text
    b_tag = db.image.ref.rsplit(":", 1)[-1]
    digest = registry.manifest_digest(b, b_tag)
    assert digest and digest.startswith("sha256:")

    task = wait_for(
        lambda: docker_client.containers.list(filters={"label": f"koyra.app={a}"}),
        30,
        "a running container of app A",
    )[0]
    port = cluster.registry_port()
    ways = [(_gateway(task), port), (cluster.REGISTRY_SERVICE, 5000)]
    manifest = json.dumps({"schemaVersion": 2, "config": {}, "layers": []})
    attempts = [
        ("GET", "/v2/_catalog", ""),
        ("GET", f"/v2/{b}/tags/list", ""),
        ("GET", f"/v2/{b}/manifests/{digest}", ""),
        ("HEAD", f"/v2/{b}/manifests/{b_tag}", ""),
        ("PUT", f"/v2/{b}/manifests/{b_tag}", manifest),
        ("DELETE", f"/v2/{b}/manifests/{digest}", ""),
        ("POST", f"/v2/{b}/blobs/uploads/", ""),
    ]
    for host, p in ways:
        for method, path, body in attempts:
            answer = _http(task, host, p, method, path, body)
            status = answer.split("\r\n", 1)[0]
            assert status.startswith("HTTP/1.") and " 401 " in f"{status} ", (
                f"{method} {path} via {host}:{p} from app {a}: {answer[:300]!r}"
            )
            assert 'realm="koyra-registry"' in answer  # it is the registry that refuses

    # Nothing of B's changed, and Koyra itself still reads it.
    assert registry.manifest_digest(b, b_tag) == digest
    assert registry.tags(b) == [b_tag]

    # Koyra's login is nowhere an app (or `docker service inspect`) can see it.
    creds = registry.credentials()
    assert creds is not None
    password = creds["password"]
    for name in (a, b):
        attrs = engine.service_get(f"{name}_web")
        assert password not in json.dumps(attrs)
    assert password not in json.dumps(task.attrs)
    env = task.exec_run(["sh", "-c", "env; cat /run/secrets/* 2>/dev/null"]).output.decode()
    assert password not in env
    assert password not in da.log_text and password not in db.log_text

    # While B runs here, its image is in this engine's local store, which every build shares:
    # a Dockerfile of A that names it by a tag it can guess (B's commit; public for an open
    # source repository) finds nothing, because Koyra's tags carry random bits too.
    assert docker_client.images.list(name=f"{settings.KOYRA_REGISTRY}/{b}")
    repo_a.commit(
        {
            "Dockerfile": (
                f"FROM {settings.KOYRA_REGISTRY}/{b}:{db.commit}\n"
                'CMD ["httpd", "-f", "-p", "8000", "-h", "/www"]\n'
            )
        }
    )
    guessed = wait_deploy(services.deploy_create(app=da.app, trigger="manual"))
    assert guessed.status == Deploy.Status.FAILED, guessed.log_text
    assert "docker build failed" in guessed.log_text

    # A build of A cannot pull B's image from the registry: its Dockerfile names B by digest.
    # (B's image leaves this engine first, as on a build node that never ran B: a build
    # shares the engine's local images, which is not the registry's concern.)
    engine.service_remove(f"{b}_web")
    wait_for(
        lambda: not docker_client.containers.list(all=True, filters={"label": f"koyra.app={b}"}),
        60,
        "B's containers to go",
    )
    for image in docker_client.images.list(name=f"{settings.KOYRA_REGISTRY}/{b}"):
        for ref in [*image.tags, *image.attrs.get("RepoDigests", [])]:
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.images.remove(ref, force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(f"{settings.KOYRA_REGISTRY}/{b}@{digest}")
    repo_a.commit(
        {
            "Dockerfile": (
                f"FROM {settings.KOYRA_REGISTRY}/{b}@{digest}\n"
                'CMD ["httpd", "-f", "-p", "8000", "-h", "/www"]\n'
            )
        }
    )
    stolen = wait_deploy(services.deploy_create(app=da.app, trigger="manual"))
    assert stolen.status == Deploy.Status.FAILED, stolen.log_text
    log = stolen.log_text
    assert "docker build failed" in log
    assert "no basic auth credentials" in log or "unauthorized" in log.lower(), log
    assert password not in log
    # Koyra still pulls it with its login: the image is there, only A could not have it.
    assert registry.manifest_digest(b, b_tag) == digest
