"""Every rule of SPEC §4 for both content types GitHub offers: application/json and
application/x-www-form-urlencoded (`payload=<urlencoded JSON>`, GitHub's default for a webhook
added by hand). Payloads are shaped like GitHub's own (payloads.py)."""

from __future__ import annotations

import json

import pytest

from deployments.models import Deploy
from deployments.webhooks import github
from deployments.webhooks.models import WebhookDelivery
from tests.deployments.webhooks import payloads as gh
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _redis_is_down(settings):
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}


@pytest.fixture(params=gh.CONTENT_TYPES, ids=["json", "form"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def app(db):
    return AppFactory(name="octo", repo_url=gh.REPO_URL, branch="main")


@pytest.fixture
def ci_app(db):
    return AppFactory(
        name="octo-ci",
        repo_url=f"git@github.com:{gh.REPO}.git",
        branch="main",
        trigger="workflow_run",
    )


def _only_delivery() -> WebhookDelivery:
    (delivery,) = WebhookDelivery.objects.all()
    return delivery


# --- push ------------------------------------------------------------------------------------


def test_a_push_to_the_branch_queues_its_commit(client, app, kind):
    resp = gh.deliver(client, "octo", gh.push(), content_type=kind, delivery="d-1")
    deploy = Deploy.objects.get()
    assert resp.status_code == 202
    assert resp.json() == {"status": "queued", "deploy": deploy.pk}
    assert (deploy.app, deploy.commit, deploy.trigger) == (app, gh.SHA, "push")
    d = _only_delivery()
    assert (d.delivery_id, d.outcome, d.deploy) == ("d-1", WebhookDelivery.ACCEPTED, deploy)


def test_a_form_body_with_spaces_encoded_either_way_is_read(client, app):
    for plus in (True, False):
        body = gh.encode(gh.push(), gh.FORM, plus=plus)
        assert (b"+" in body) == plus
        resp = gh.deliver(client, "octo", body=body, content_type=gh.FORM)
        assert resp.status_code == 202, resp.json()


def test_a_content_type_with_a_charset_parameter_is_understood(client, app):
    body = gh.encode(gh.push(), gh.FORM)
    resp = gh.deliver(client, "octo", body=body, content_type=f"{gh.FORM}; charset=utf-8")
    assert resp.status_code == 202, resp.json()


@pytest.mark.parametrize("other", ["octo-org/octo-repo-fork", "mallory/octo-repo", "octo-org/x"])
def test_a_push_to_another_repository_is_ignored_naming_both(client, app, kind, other):
    resp = gh.deliver(client, "octo", gh.push(repo=other), content_type=kind)
    assert resp.status_code == 200
    reason = resp.json()["reason"]
    assert resp.json()["status"] == "ignored"
    assert other in reason and gh.REPO in reason
    assert not Deploy.objects.exists()
    assert _only_delivery().outcome == WebhookDelivery.IGNORED


def test_the_repository_is_compared_case_insensitively(client, kind):
    AppFactory(name="octo", repo_url="https://github.com/Octo-Org/Octo-Repo")
    resp = gh.deliver(client, "octo", gh.push(repo="octo-org/OCTO-REPO"), content_type=kind)
    assert resp.status_code == 202


def test_a_push_from_another_repository_never_deploys_even_for_a_ci_app(client, ci_app, kind):
    resp = gh.deliver(client, "octo-ci", gh.push(repo="mallory/x"), content_type=kind)
    assert "mallory/x" in resp.json()["reason"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            gh.push(ref="refs/tags/simple-tag", before=gh.ZERO, created=True),
            "tag push (refs/tags/simple-tag): only pushes to refs/heads/main deploy",
        ),
        (gh.push(ref="refs/heads/dev"), "push to refs/heads/dev, app deploys refs/heads/main"),
        (
            gh.push(sha=gh.ZERO, before=gh.SHA, deleted=True),
            "refs/heads/main was deleted: nothing to deploy",
        ),
        (
            # GitHub's documented push example: the deletion of a tag.
            gh.push(ref="refs/tags/simple-tag", sha=gh.ZERO, before=gh.BEFORE, deleted=True),
            "tag push (refs/tags/simple-tag): only pushes to refs/heads/main deploy",
        ),
    ],
)
def test_tags_other_branches_and_deletions_are_ignored(client, app, kind, payload, reason):
    resp = gh.deliver(client, "octo", payload, content_type=kind)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ignored", "reason": reason}
    assert not Deploy.objects.exists()


def test_a_push_without_its_repository_is_malformed(client, app, kind):
    payload = gh.push()
    del payload["repository"]
    resp = gh.deliver(client, "octo", payload, content_type=kind)
    assert resp.status_code == 400
    assert "'repository'" in resp.json()["reason"]
    assert _only_delivery().outcome == WebhookDelivery.REFUSED


# --- workflow_run ----------------------------------------------------------------------------


def test_a_successful_run_on_the_branch_deploys_its_head_sha(client, ci_app, kind):
    resp = gh.deliver(client, "octo-ci", gh.workflow_run(), event="workflow_run", content_type=kind)
    assert resp.status_code == 202
    deploy = Deploy.objects.get()
    assert (deploy.commit, deploy.trigger) == (gh.SHA, "workflow_run")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"repo": "octo-org/other"}, "octo-org/other"),  # an organization's webhook
        ({"head_repo": "mallory/octo-repo"}, "mallory/octo-repo"),  # a fork's run
    ],
)
def test_a_run_of_another_repository_is_ignored_naming_both(client, ci_app, kind, kwargs, named):
    resp = gh.deliver(
        client, "octo-ci", gh.workflow_run(**kwargs), event="workflow_run", content_type=kind
    )
    assert resp.status_code == 200
    assert resp.json()["status"] == "ignored"
    assert named in resp.json()["reason"] and gh.REPO in resp.json()["reason"]
    assert not Deploy.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"conclusion": "failure"}, "concluded failure"),
        ({"action": "in_progress"}, "in_progress, not completed yet"),
        ({"action": "requested"}, "requested, not completed yet"),
        ({"event": "pull_request"}, "ran for a pull_request event"),
        ({"head_branch": "feature"}, "ran on branch feature, app deploys main"),
    ],
)
def test_runs_that_are_not_a_green_push_run_on_the_branch_are_ignored(
    client, ci_app, kind, kwargs, reason
):
    resp = gh.deliver(
        client, "octo-ci", gh.workflow_run(**kwargs), event="workflow_run", content_type=kind
    )
    assert resp.status_code == 200
    assert resp.json()["status"] == "ignored"
    assert reason in resp.json()["reason"]
    assert not Deploy.objects.exists()


# --- ping and other events -------------------------------------------------------------------


def test_a_ping_answers_pong(client, app, kind):
    resp = gh.deliver(client, "octo", gh.ping(), event="ping", content_type=kind)
    assert resp.json() == {"status": "pong"}
    assert _only_delivery().reason == "ping: the webhook reaches Koyra"


def test_a_ping_of_another_repositorys_hook_says_so(client, app, kind):
    resp = gh.deliver(client, "octo", gh.ping("octo-org/other"), event="ping", content_type=kind)
    assert resp.json() == {"status": "pong"}
    reason = _only_delivery().reason
    assert "octo-org/other" in reason and gh.REPO in reason


def test_an_organizations_ping_has_no_repository_and_still_answers_pong(client, app, kind):
    resp = gh.deliver(client, "octo", gh.ping(repo=None), event="ping", content_type=kind)
    assert resp.json() == {"status": "pong"}


def test_other_events_of_another_repository_name_it(client, app, kind):
    payload = {"action": "created", "repository": gh.repository("octo-org/other")}
    resp = gh.deliver(client, "octo", payload, event="star", content_type=kind)
    assert resp.status_code == 200
    assert "octo-org/other" in resp.json()["reason"]


# --- the signature is over the raw body ------------------------------------------------------


def test_the_signature_covers_the_form_encoding_not_only_the_json(client, app):
    # The same JSON, URL-encoded another way, is another body: its signature does not match.
    signed = gh.encode(gh.push(), gh.FORM, plus=True)
    sent = gh.encode(gh.push(), gh.FORM, plus=False)
    resp = client.post(
        "/webhooks/github/octo/",
        data=sent,
        content_type=gh.FORM,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "d-x",
            "X-Hub-Signature-256": github.signature(gh.SECRET, signed),
        },
    )
    assert resp.status_code == 403
    assert not WebhookDelivery.objects.exists() and not Deploy.objects.exists()


def test_a_form_delivery_signed_with_another_secret_is_refused(client, app):
    resp = gh.deliver(client, "octo", gh.push(), content_type=gh.FORM, secret="not-it")
    assert resp.status_code == 403
    assert not WebhookDelivery.objects.exists()


# --- malformed bodies: 400, listed, never a 500 ----------------------------------------------


def _nested(depth: int) -> str:
    return '{"ref": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deeply_nested_signed_json_is_400_not_500(client, app, kind, depth):
    text = _nested(depth)
    body = text.encode() if kind == gh.JSON else b"payload=" + text.encode()
    resp = gh.deliver(client, "octo", body=body, content_type=kind)
    assert resp.status_code == 400
    assert "nested too deeply" in resp.json()["reason"]
    assert _only_delivery().outcome == WebhookDelivery.REFUSED


FORM_PUSH = json.dumps(gh.push())


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"zen=x", "no payload field"),
        (b"payload", "not payload=<urlencoded JSON>"),
        (b"&payload=%7B%7D", "not payload=<urlencoded JSON>"),
        (b"payload=%7B%7D&payload=%7B%7D", "payload repeated"),
        (b"payload=%7B%7D&extra=1", "other fields: extra"),
        (b"payload=%ff%fe", "not payload=<urlencoded JSON>"),
        (b"payload=\xff", "not payload=<urlencoded JSON>"),
        (b"payload=", "the form field payload is not JSON"),
        (b"payload=%5B1%2C2%5D", "the form field payload is JSON but not an object"),
        (b"payload=" + FORM_PUSH[:-1].encode(), "the form field payload is not JSON"),
        (b'{"ref": "refs/heads/main"}', "not payload=<urlencoded JSON>"),
    ],
)
def test_a_malformed_form_body_is_400_with_the_reason(client, app, body, says):
    resp = gh.deliver(client, "octo", body=body, content_type=gh.FORM, delivery="d-bad")
    assert resp.status_code == 400
    assert resp.json()["status"] == "refused"
    assert resp.json()["reason"].startswith("malformed payload: ")
    assert says in resp.json()["reason"]
    d = _only_delivery()
    assert (d.delivery_id, d.outcome) == ("d-bad", WebhookDelivery.REFUSED)
    assert not Deploy.objects.exists()
