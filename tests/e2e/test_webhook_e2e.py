"""A signed GitHub push over real HTTP to daphne, through the real worker, to live."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from apps import services as app_services
from deployments.models import Deploy
from deployments.webhooks import github
from deployments.webhooks.models import WebhookDelivery
from tests.e2e import servers
from tests.e2e.conftest import httpd_app, via_traefik, wait_deploy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

daphne = servers.daphne  # the session fixture, under its own name

MANIFEST = """\
version: 1
run:
  port: 8000
  healthcheck: {{path: /index.html, interval: 1, timeout: 1, retries: 2, start_period: 0}}
  domains: [{host}]
"""


def push_payload(sha: str, full_name: str) -> dict:
    return {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": sha,
        "created": True,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "repository": {"name": full_name.split("/")[-1], "full_name": full_name},
        "pusher": {"name": "alice", "email": "alice@example.com"},
        "sender": {"login": "alice"},
        "commits": [],
        "head_commit": {"id": sha, "message": "v1"},
    }


def signed_headers(secret: str, body: bytes, event: str = "push") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": github.signature(secret, body),
    }


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, float]:
    """POST over HTTP; the status, the JSON answer and how long the answer took."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    return status, json.loads(text), time.monotonic() - start


def test_a_signed_push_goes_live_and_serves_through_traefik(
    daphne, worker, cluster_ready, unique_name, make_repo
):
    name = unique_name("hook")
    host = f"{name}.koyra.test"
    repo = make_repo()
    files = httpd_app(
        cluster_ready["base"], "pushed-by-webhook", manifest=MANIFEST.format(host=host)
    )
    sha = repo.commit(files, "v1")
    app, secret = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    body = json.dumps(push_payload(sha, app.repo_full_name)).encode()
    headers = signed_headers(secret, body)

    status, answer, seconds = post(f"{daphne}/webhooks/github/{name}/", body, headers)

    assert status == 202, answer
    assert seconds < 1
    deploy = Deploy.objects.get(pk=answer["deploy"])
    assert answer == {"status": "queued", "deploy": deploy.pk}
    assert (deploy.app, deploy.commit, deploy.trigger) == (app, sha, "push")
    delivery = WebhookDelivery.objects.get(delivery_id=headers["X-GitHub-Delivery"])
    assert (delivery.outcome, delivery.deploy) == (WebhookDelivery.ACCEPTED, deploy)
    deploy = wait_deploy(deploy)
    assert deploy.status == Deploy.Status.LIVE, deploy.log_text
    wait_for(
        lambda: via_traefik(host) == (200, "pushed-by-webhook\n"), 30, "the app through Traefik"
    )
    # GitHub retries a delivery it thinks failed: the same delivery again deploys nothing.
    status, answer, _ = post(f"{daphne}/webhooks/github/{name}/", body, headers)
    assert (status, answer) == (200, {"status": "duplicate"})
    assert app.deploys.count() == 1


def test_a_forged_push_over_http_is_refused_and_leaves_no_trace(daphne, unique_name, make_repo):
    name = unique_name("forged")
    app, _ = app_services.app_create(name=name, repo_url=make_repo().url, branch="main")
    body = json.dumps(push_payload("a" * 40, app.repo_full_name)).encode()
    status, answer, _ = post(
        f"{daphne}/webhooks/github/{name}/", body, signed_headers("not-the-secret", body)
    )
    assert status == 403, answer
    assert not WebhookDelivery.objects.filter(app=app).exists()
    assert not app.deploys.exists()


def test_a_chunked_body_over_25_mb_is_refused_with_413(daphne, unique_name, make_repo):
    # No Content-Length: only counting the bytes actually read catches this one.
    name = unique_name("big")
    app, secret = app_services.app_create(name=name, repo_url=make_repo().url, branch="main")
    chunk = b" " * (1024 * 1024)
    conn = http.client.HTTPConnection(urllib.parse.urlsplit(daphne).netloc, timeout=60)
    try:
        conn.request(
            "POST",
            f"/webhooks/github/{name}/",
            body=iter([chunk] * 26),
            headers=signed_headers(secret, b"{}"),
            encode_chunked=True,
        )
        resp = conn.getresponse()
        assert resp.status == 413
        assert json.loads(resp.read())["status"] == "refused"
    finally:
        conn.close()
    assert not WebhookDelivery.objects.filter(app=app).exists()
