"""POST /webhooks/github/<app>/ with payloads shaped like GitHub's own.

Redis is unreachable in this module (a closed port): the view must answer anyway, and the
deploy stays queued in the database for the worker's sweep.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
import time
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from apps import services as app_services
from deployments.models import Deploy
from deployments.webhooks import github
from deployments.webhooks.models import WebhookDelivery
from tests.factories import AppFactory

SECRET = "webhook-secret"  # what AppFactory encrypts
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
BEFORE = "2d5a8f3c6b4e1f7a9c0b3d5e7f1a2c4b6d8e0f12"
ZERO = "0" * 40


@pytest.fixture(autouse=True)
def _redis_is_down(settings):
    # services keeps one queue per RQ_QUEUES configuration: this one answers nothing.
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}


@pytest.fixture
def app(db):
    return AppFactory(name="shop", repo_url="https://github.com/acme/shop.git", branch="main")


@pytest.fixture
def ci_app(db):
    return AppFactory(
        name="shop-ci",
        repo_url="git@github.com:acme/shop.git",
        branch="main",
        trigger="workflow_run",
    )


# --- GitHub-shaped payloads -------------------------------------------------------------------


def _repository(full_name: str = "acme/shop") -> dict:
    owner, name = full_name.split("/")
    return {
        "id": 1296269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": {"login": owner, "id": 1, "type": "Organization"},
        "html_url": f"https://github.com/{full_name}",
        "clone_url": f"https://github.com/{full_name}.git",
        "default_branch": "main",
    }


def _commit(sha: str) -> dict:
    person = {"name": "Alice", "email": "alice@example.com", "username": "alice"}
    return {
        "id": sha,
        "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
        "distinct": True,
        "message": "Fix the checkout button",
        "timestamp": "2026-01-14T10:12:03+01:00",
        "url": f"https://github.com/acme/shop/commit/{sha}",
        "author": person,
        "committer": person,
        "added": [],
        "removed": [],
        "modified": ["shop/checkout.py"],
    }


def push_payload(
    *,
    ref: str = "refs/heads/main",
    after: str = SHA,
    before: str = BEFORE,
    created: bool = False,
    deleted: bool = False,
) -> dict:
    head = None if deleted else _commit(after)
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": _repository(),
        "pusher": {"name": "alice", "email": "alice@example.com"},
        "sender": {"login": "alice", "id": 2, "type": "User"},
        "created": created,
        "deleted": deleted,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/acme/shop/compare/{before[:12]}...{after[:12]}",
        "commits": [] if head is None else [head],
        "head_commit": head,
    }


def workflow_run_payload(
    *,
    action: str = "completed",
    conclusion: str | None = "success",
    event: str = "push",
    head_branch: str = "main",
    head_repo: str = "acme/shop",
) -> dict:
    status = {"requested": "queued", "in_progress": "in_progress"}.get(action, "completed")
    return {
        "action": action,
        "workflow_run": {
            "id": 30433642,
            "name": "CI",
            "node_id": "MDEyOldvcmtmbG93IFJ1bjI2OTI4OQ==",
            "head_branch": head_branch,
            "head_sha": SHA,
            "path": ".github/workflows/ci.yml",
            "display_title": "Fix the checkout button",
            "run_number": 562,
            "event": event,
            "status": status,
            "conclusion": conclusion if status == "completed" else None,
            "workflow_id": 159038,
            "run_attempt": 1,
            "pull_requests": [],
            "created_at": "2026-01-14T09:12:03Z",
            "updated_at": "2026-01-14T09:14:41Z",
            "head_commit": {"id": SHA, "message": "Fix the checkout button"},
            "repository": _repository(),
            "head_repository": _repository(head_repo),
        },
        "workflow": {"id": 159038, "name": "CI", "path": ".github/workflows/ci.yml"},
        "repository": _repository(),
        "sender": {"login": "alice", "id": 2, "type": "User"},
    }


PING = {
    "zen": "Keep it logically awesome.",
    "hook_id": 12345678,
    "hook": {
        "type": "Repository",
        "id": 12345678,
        "name": "web",
        "active": True,
        "events": ["push", "workflow_run"],
        "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://k.example/"},
    },
    "repository": _repository(),
    "sender": {"login": "alice", "id": 2, "type": "User"},
}


def post(
    client,
    app_name: str,
    payload=None,
    *,
    event: str = "push",
    body: bytes | None = None,
    secret: str = SECRET,
    delivery: str | None = None,
    signature: str | None = None,
    extra: dict | None = None,
):
    body = json.dumps(payload).encode() if body is None else body
    headers = {
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "12345678",
        "X-Hub-Signature-256": signature or github.signature(secret, body),
        **(extra or {}),
    }
    headers = {k: v for k, v in headers.items() if v is not None}
    return client.post(
        f"/webhooks/github/{app_name}/",
        data=body,
        content_type="application/json",
        headers=headers,
    )


def only_delivery() -> WebhookDelivery:
    (delivery,) = WebhookDelivery.objects.all()
    return delivery


# --- push --------------------------------------------------------------------------------


def test_a_push_to_the_branch_queues_a_deploy_of_its_commit(
    client, app, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        resp = post(client, "shop", push_payload(), delivery="d-1")
    deploy = Deploy.objects.get()
    assert resp.status_code == 202
    assert resp.json() == {"status": "queued", "deploy": deploy.pk}
    assert (deploy.app, deploy.commit, deploy.trigger) == (app, SHA, "push")
    assert deploy.status == Deploy.Status.QUEUED
    assert len(callbacks) == 1  # the enqueue, once the rows are committed
    d = only_delivery()
    assert (d.delivery_id, d.app, d.event, d.commit) == ("d-1", app, "push", SHA)
    assert (d.outcome, d.deploy) == (WebhookDelivery.ACCEPTED, deploy)
    assert d.reason == "push to refs/heads/main"


def test_a_push_creating_the_apps_branch_deploys(client, app):
    resp = post(client, "shop", push_payload(before=ZERO, created=True))
    assert resp.status_code == 202
    assert Deploy.objects.get().commit == SHA
    assert only_delivery().outcome == WebhookDelivery.ACCEPTED


def test_a_push_creating_another_branch_is_ignored(client, app):
    resp = post(client, "shop", push_payload(ref="refs/heads/feature/x", before=ZERO, created=True))
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "ignored",
        "reason": "push to refs/heads/feature/x, app deploys refs/heads/main",
    }
    assert not Deploy.objects.exists()
    d = only_delivery()
    assert (d.outcome, d.commit, d.deploy) == (WebhookDelivery.IGNORED, SHA, None)


def test_it_ignores_pushes_to_other_branches(client, app):
    resp = post(client, "shop", push_payload(ref="refs/heads/dev"))
    assert resp.json()["reason"] == "push to refs/heads/dev, app deploys refs/heads/main"
    assert not Deploy.objects.exists()


def test_it_ignores_tag_pushes(client, app):
    resp = post(client, "shop", push_payload(ref="refs/tags/v1.2.0", before=ZERO, created=True))
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "ignored",
        "reason": "tag push (refs/tags/v1.2.0): only pushes to refs/heads/main deploy",
    }
    assert not Deploy.objects.exists()
    assert only_delivery().outcome == WebhookDelivery.IGNORED


def test_it_ignores_the_deletion_of_the_branch(client, app):
    resp = post(client, "shop", push_payload(after=ZERO, before=SHA, deleted=True))
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "ignored",
        "reason": "refs/heads/main was deleted: nothing to deploy",
    }
    assert not Deploy.objects.exists()
    d = only_delivery()
    assert (d.outcome, d.commit) == (WebhookDelivery.IGNORED, "")


def test_it_never_deploys_the_all_zero_commit(client, app):
    resp = post(client, "shop", push_payload(after=ZERO))
    assert resp.json()["status"] == "ignored"
    assert not Deploy.objects.exists()


def test_a_push_to_an_app_that_waits_for_ci_is_ignored(client, ci_app):
    resp = post(client, "shop-ci", push_payload())
    assert resp.status_code == 200
    assert resp.json()["status"] == "ignored"
    assert "waits for CI (trigger workflow_run)" in resp.json()["reason"]
    assert not Deploy.objects.exists()
    assert only_delivery().commit == SHA


def test_it_refuses_a_push_whose_commit_is_not_a_full_sha(client, app):
    resp = post(client, "shop", push_payload(after="6113728"), delivery="d-short")
    assert resp.status_code == 400
    assert "after is not a full commit SHA" in resp.json()["reason"]
    assert not Deploy.objects.exists()
    d = only_delivery()
    assert (d.delivery_id, d.outcome) == ("d-short", WebhookDelivery.REFUSED)


# --- workflow_run ------------------------------------------------------------------------


def test_a_successful_ci_run_on_the_branch_deploys_its_head_sha(client, ci_app):
    resp = post(client, "shop-ci", workflow_run_payload(), event="workflow_run")
    deploy = Deploy.objects.get()
    assert resp.status_code == 202
    assert resp.json() == {"status": "queued", "deploy": deploy.pk}
    assert (deploy.app, deploy.commit, deploy.trigger) == (ci_app, SHA, "workflow_run")
    d = only_delivery()
    assert (d.event, d.commit, d.outcome, d.deploy) == (
        "workflow_run",
        SHA,
        WebhookDelivery.ACCEPTED,
        deploy,
    )


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"conclusion": "failure"}, "workflow run CI: concluded failure; only a success deploys"),
        (
            {"conclusion": "cancelled"},
            "workflow run CI: concluded cancelled; only a success deploys",
        ),
        ({"action": "requested"}, "workflow run CI: requested, not completed yet"),
        ({"action": "in_progress"}, "workflow run CI: in_progress, not completed yet"),
        (
            {"event": "pull_request"},
            "workflow run CI: ran for a pull_request event; only runs for pushes deploy",
        ),
        ({"head_branch": "dev"}, "workflow run CI: ran on branch dev, app deploys main"),
    ],
)
def test_it_ignores_ci_runs_that_are_not_a_successful_push_run_on_the_branch(
    client, ci_app, kwargs, reason
):
    resp = post(client, "shop-ci", workflow_run_payload(**kwargs), event="workflow_run")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ignored"
    assert resp.json()["reason"].startswith(reason)
    assert not Deploy.objects.exists()
    d = only_delivery()
    assert (d.event, d.outcome, d.commit) == ("workflow_run", WebhookDelivery.IGNORED, SHA)
    assert d.reason == resp.json()["reason"]


def test_a_forks_pull_request_run_on_a_branch_named_like_ours_never_deploys(client, ci_app):
    payload = workflow_run_payload(event="pull_request", head_repo="mallory/shop")
    resp = post(client, "shop-ci", payload, event="workflow_run")
    assert resp.json()["status"] == "ignored"
    # Even if GitHub called the fork's run a push run, the repository check refuses it.
    payload = workflow_run_payload(head_repo="mallory/shop")
    resp = post(client, "shop-ci", payload, event="workflow_run")
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "ignored",
        "reason": "workflow run CI: ran on mallory/shop, not on the app's repository acme/shop",
    }
    assert not Deploy.objects.exists()
    assert WebhookDelivery.objects.filter(outcome=WebhookDelivery.IGNORED).count() == 2


def test_a_ci_run_for_an_app_that_deploys_on_push_is_ignored(client, app):
    resp = post(client, "shop", workflow_run_payload(), event="workflow_run")
    assert resp.status_code == 200
    assert "deploys on push (trigger push)" in resp.json()["reason"]
    assert not Deploy.objects.exists()


# --- other events ------------------------------------------------------------------------


def test_a_ping_answers_pong(client, app):
    resp = post(client, "shop", PING, event="ping", delivery="ping-1")
    assert resp.status_code == 200
    assert resp.json() == {"status": "pong"}
    d = only_delivery()
    assert (d.delivery_id, d.event, d.outcome) == ("ping-1", "ping", WebhookDelivery.IGNORED)
    assert d.reason == "ping: the webhook reaches Koyra"
    assert not Deploy.objects.exists()


def test_a_ping_records_that_the_hook_does_not_send_the_apps_trigger(client, ci_app):
    ping = {**PING, "hook": {**PING["hook"], "events": ["push"]}}
    resp = post(client, "shop-ci", ping, event="ping")
    assert resp.json() == {"status": "pong"}
    assert "add workflow_run to its events" in only_delivery().reason


def test_it_ignores_pull_request_events(client, app):
    payload = {"action": "opened", "number": 7, "pull_request": {"head": {"sha": SHA}}}
    resp = post(client, "shop", payload, event="pull_request")
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "ignored",
        "reason": "pull_request events never deploy: this app deploys on push",
    }
    assert not Deploy.objects.exists()
    assert only_delivery().event == "pull_request"


# --- signatures: 403 and nothing recorded ------------------------------------------------


def _nothing_recorded() -> bool:
    return not WebhookDelivery.objects.exists() and not Deploy.objects.exists()


def _sha1(secret: str, body: bytes) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


BODY = json.dumps(push_payload()).encode()


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Hub-Signature-256": github.signature("forged", BODY)}, id="forged"),
        pytest.param({"X-Hub-Signature-256": None}, id="missing"),
        pytest.param(
            {"X-Hub-Signature-256": None, "X-Hub-Signature": _sha1(SECRET, BODY)}, id="sha1-only"
        ),
        pytest.param({"X-Hub-Signature-256": "sha256=not-hex"}, id="malformed"),
        pytest.param({"X-Hub-Signature-256": "sha256=" + "é" * 64}, id="non-ascii"),
        pytest.param({"X-Hub-Signature-256": github.signature(SECRET, BODY)[7:]}, id="no-prefix"),
    ],
)
def test_it_refuses_bad_signatures_with_403_and_records_nothing(client, app, headers):
    resp = post(client, "shop", body=BODY, delivery="d-forged", extra=headers)
    assert resp.status_code == 403
    assert resp.json()["status"] == "refused"
    assert _nothing_recorded()


def test_another_apps_secret_is_refused(client, app):
    other = AppFactory(name="blog")
    other_secret = app_services.app_regenerate_webhook_secret(app=other)
    resp = post(client, "shop", push_payload(), secret=other_secret)
    assert resp.status_code == 403
    assert _nothing_recorded()


def test_re_serialised_json_with_the_original_signature_is_refused(client, app):
    original = json.dumps(push_payload()).encode()
    same_data = json.dumps(push_payload(), indent=2, sort_keys=True).encode()
    assert json.loads(same_data) == json.loads(original) and same_data != original
    resp = post(client, "shop", body=same_data, signature=github.signature(SECRET, original))
    assert resp.status_code == 403
    assert _nothing_recorded()


def test_a_bad_signature_is_logged_without_the_secret_or_the_signature(client, app, caplog):
    forged = github.signature("forged", BODY)
    post(client, "shop", body=BODY, signature=forged)
    assert "webhook for shop refused" in caplog.text
    assert forged not in caplog.text and SECRET not in caplog.text


def test_a_regenerated_secret_replaces_the_old_one(client, app):
    out = io.StringIO()
    call_command("regenerate_webhook_secret", "shop", stdout=out)
    (line,) = out.getvalue().splitlines()
    assert line.startswith("webhook_secret: ")
    new_secret = line.removeprefix("webhook_secret: ")
    assert len(new_secret) == 64 and new_secret != SECRET
    assert post(client, "shop", PING, event="ping", secret=SECRET).status_code == 403
    assert post(client, "shop", PING, event="ping", secret=new_secret).status_code == 200


def test_regenerating_the_secret_of_an_unknown_app_fails(db):
    with pytest.raises(CommandError, match="No app named 'nope'"):
        call_command("regenerate_webhook_secret", "nope")


# --- redeliveries ------------------------------------------------------------------------


def test_a_redelivery_answers_duplicate_and_queues_nothing(client, app):
    first = post(client, "shop", push_payload(), delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    again = post(client, "shop", push_payload(), delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    assert Deploy.objects.count() == 1
    original = WebhookDelivery.objects.get(delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert original.outcome == WebhookDelivery.ACCEPTED
    dup = WebhookDelivery.objects.get(outcome=WebhookDelivery.DUPLICATE)
    assert (dup.delivery_id, dup.deploy, dup.commit) == (None, None, SHA)
    assert dup.reason.startswith("redelivery of 72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert "(accepted): nothing queued" in dup.reason


def test_a_redelivery_of_an_ignored_push_is_judged_again_and_listed(client, app):
    # SPEC §4 changed: only a delivery that queued a deploy is a duplicate when redelivered.
    post(client, "shop", push_payload(ref="refs/tags/v1"), delivery="d-tag")
    again = post(client, "shop", push_payload(ref="refs/tags/v1"), delivery="d-tag")
    assert again.json()["status"] == "ignored"
    assert not Deploy.objects.exists()
    outcomes = WebhookDelivery.objects.filter(delivery_id="d-tag").values_list("outcome", flat=True)
    assert list(outcomes) == [WebhookDelivery.IGNORED] * 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_make_exactly_one_deploy():
    AppFactory(name="shop")
    body = json.dumps(push_payload()).encode()
    barrier = threading.Barrier(8)
    answers: list[tuple[int, dict]] = []

    def deliver() -> None:
        try:
            barrier.wait()
            resp = post(Client(), "shop", body=body, delivery="same-delivery")
            answers.append((resp.status_code, resp.json()))
        finally:
            connection.close()  # each thread has its own connection to the test database

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    deploy = Deploy.objects.get()
    assert sorted(code for code, _ in answers) == [200] * 7 + [202]
    assert [a for code, a in answers if code == 202] == [{"status": "queued", "deploy": deploy.pk}]
    assert all(a == {"status": "duplicate"} for code, a in answers if code == 200)
    accepted = WebhookDelivery.objects.get(delivery_id="same-delivery")
    assert (accepted.outcome, accepted.deploy) == (WebhookDelivery.ACCEPTED, deploy)
    assert WebhookDelivery.objects.filter(outcome=WebhookDelivery.DUPLICATE).count() == 7


# --- malformed requests ------------------------------------------------------------------


def test_an_unknown_app_is_404(client, db):
    resp = post(client, "nope", push_payload())
    assert resp.status_code == 404
    assert resp.json() == {"status": "refused", "reason": "no app named 'nope'"}
    assert _nothing_recorded()


def test_it_only_takes_post(client, app):
    assert client.get("/webhooks/github/shop/").status_code == 405


def test_a_signed_body_that_is_not_json_is_400_and_listed(client, app):
    resp = post(client, "shop", body=b'{"ref": "refs/heads/main", ', delivery="d-bad")
    assert resp.status_code == 400
    assert resp.json()["status"] == "refused"
    assert resp.json()["reason"].startswith("malformed payload: the body is not JSON")
    d = only_delivery()
    assert (d.delivery_id, d.event, d.outcome) == ("d-bad", "push", WebhookDelivery.REFUSED)
    assert not Deploy.objects.exists()


def test_a_form_encoded_body_sent_as_json_says_which_content_type_it_looks_like(client, app):
    # SPEC §4 changed: form-encoded deliveries are accepted (tests/.../test_content_types.py);
    # a form body under a JSON Content-Type (a proxy rewrote it?) is still explained.
    body = b"payload=" + json.dumps(push_payload()).encode()
    resp = post(client, "shop", body=body)
    assert resp.status_code == 400
    assert "application/x-www-form-urlencoded" in resp.json()["reason"]


def test_a_delivery_without_an_id_is_400_and_listed(client, app):
    resp = post(client, "shop", push_payload(), extra={"X-GitHub-Delivery": None})
    assert resp.status_code == 400
    assert "X-GitHub-Delivery" in resp.json()["reason"]
    d = only_delivery()
    assert (d.delivery_id, d.outcome) == (None, WebhookDelivery.REFUSED)
    assert not Deploy.objects.exists()


def test_a_body_over_25_mb_is_413_and_records_nothing(client, app):
    body = b"x" * (25 * 1024 * 1024 + 1)
    resp = post(client, "shop", body=body)
    assert resp.status_code == 413
    assert _nothing_recorded()


def test_a_push_of_exactly_25_mb_is_accepted(client, app):
    payload = push_payload()
    payload["commits"] = []
    payload["head_commit"]["message"] = ""
    size = len(json.dumps(payload).encode())
    payload["head_commit"]["message"] = "m" * (25 * 1024 * 1024 - size)
    body = json.dumps(payload).encode()
    assert len(body) == 25 * 1024 * 1024  # 10x Django's DATA_UPLOAD_MAX_MEMORY_SIZE
    assert post(client, "shop", body=body).status_code == 202


# --- Redis --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_answers_202_at_once_when_redis_is_down(client, caplog):
    # A real commit (no test transaction around it), so the enqueue runs as in production.
    AppFactory(name="shop")
    start = time.monotonic()
    resp = post(client, "shop", push_payload())
    assert time.monotonic() - start < 1
    assert resp.status_code == 202
    deploy = Deploy.objects.get()
    # Still queued and not handed over: the worker's sweep enqueues it once Redis is back.
    assert (deploy.status, deploy.enqueued) == (Deploy.Status.QUEUED, None)
    assert f"deploy {deploy.pk} stays queued until Redis is reachable" in caplog.text


def test_a_secret_that_no_key_decrypts_answers_500_and_records_nothing(client, app, settings):
    from cryptography.fernet import Fernet

    settings.KOYRA_FERNET_KEYS = [Fernet.generate_key().decode()]  # not the key it was made with
    resp = post(client, "shop", push_payload())
    assert resp.status_code == 500
    assert "cannot be decrypted" in resp.json()["reason"]
    assert not WebhookDelivery.objects.exists()
    assert not Deploy.objects.exists()
