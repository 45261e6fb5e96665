"""A signed GitHub push over real HTTP to daphne, through the real worker, to live."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from urllib.parse import quote_plus

import pytest

from apps import services as app_services
from deployments.models import Deploy, Image
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


def signed_headers(
    secret: str, body: bytes, event: str = "push", content_type: str = "application/json"
) -> dict[str, str]:
    return {
        "Content-Type": content_type,
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


FORM = "application/x-www-form-urlencoded"


def form_body(payload: dict) -> bytes:
    """What GitHub sends with its default content type: payload=<urlencoded JSON>."""
    return b"payload=" + quote_plus(json.dumps(payload)).encode()


def test_a_form_encoded_push_goes_live(daphne, worker, cluster_ready, unique_name, make_repo):
    name = unique_name("form")
    host = f"{name}.koyra.test"
    repo = make_repo()
    sha = repo.commit(
        httpd_app(cluster_ready["base"], "sent-as-a-form", manifest=MANIFEST.format(host=host))
    )
    app, secret = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    body = form_body(push_payload(sha, app.repo_full_name))
    headers = signed_headers(secret, body, content_type=FORM)

    status, answer, seconds = post(f"{daphne}/webhooks/github/{name}/", body, headers)

    assert status == 202, answer
    assert seconds < 1
    deploy = wait_deploy(Deploy.objects.get(pk=answer["deploy"]))
    assert (deploy.status, deploy.commit) == (Deploy.Status.LIVE, sha), deploy.log_text
    wait_for(lambda: via_traefik(host) == (200, "sent-as-a-form\n"), 30, "the app through Traefik")


def test_an_older_commits_delivery_after_a_newer_one_is_live_is_superseded_unbuilt(
    daphne, worker, cluster_ready, unique_name, make_repo
):
    """CI runs finishing out of order: v1's delivery arrives once v2 is live. It ends
    superseded by the live deploy, with the reason, without a build; v2 keeps serving."""
    name = unique_name("order")
    host = f"{name}.koyra.test"
    repo = make_repo()
    manifest = MANIFEST.format(host=host)
    v1 = repo.commit(httpd_app(cluster_ready["base"], "v1", manifest=manifest), "v1")
    v2 = repo.commit(httpd_app(cluster_ready["base"], "v2", manifest=manifest), "v2")
    app, secret = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    url = f"{daphne}/webhooks/github/{name}/"

    def deliver(sha: str) -> Deploy:
        body = json.dumps(push_payload(sha, app.repo_full_name)).encode()
        status, answer, _ = post(url, body, signed_headers(secret, body))
        assert status == 202, answer
        return wait_deploy(Deploy.objects.get(pk=answer["deploy"]))

    live = deliver(v2)
    assert live.status == Deploy.Status.LIVE, live.log_text
    wait_for(lambda: via_traefik(host) == (200, "v2\n"), 30, "v2 through Traefik")

    old = deliver(v1)

    assert old.status == Deploy.Status.SUPERSEDED, old.log_text
    assert old.error.startswith(f"superseded by the live deploy #{live.pk}: commit {v1[:12]}")
    assert "already live or older" in old.error
    assert "build" not in old.stages and "==> build" not in old.log_text
    assert not Image.objects.filter(app=app, commit=v1).exists()
    live.refresh_from_db()
    assert live.status == Deploy.Status.LIVE
    assert via_traefik(host) == (200, "v2\n")
