"""deployments.webhooks.github: GitHub's webhook signature and payload formats, no database."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from deployments.webhooks import github

# GitHub's published test vector ("Validating webhook deliveries").
VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


def test_it_signs_githubs_test_vector():
    assert github.signature(VECTOR_SECRET, VECTOR_BODY) == VECTOR_SIGNATURE


def test_it_accepts_githubs_test_vector():
    assert github.signature_is_valid(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIGNATURE)


def test_it_accepts_upper_case_hex_and_surrounding_space():
    header = " sha256=" + VECTOR_SIGNATURE.removeprefix("sha256=").upper() + " "
    assert github.signature_is_valid(VECTOR_SECRET, VECTOR_BODY, header)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        VECTOR_SIGNATURE[:-1],
        VECTOR_SIGNATURE + "0",
        VECTOR_SIGNATURE.removeprefix("sha256="),
        VECTOR_SIGNATURE.replace("sha256=", "sha1="),
        VECTOR_SIGNATURE.replace("sha256=", "SHA256="),
        "sha256=" + "z" * 64,
        "sha256=" + "é" * 64,  # compare_digest would raise on non-ASCII str
        f"{VECTOR_SIGNATURE},{VECTOR_SIGNATURE}",
    ],
)
def test_it_refuses_missing_and_malformed_signatures(header):
    assert not github.signature_is_valid(VECTOR_SECRET, VECTOR_BODY, header)


def test_it_refuses_a_sha1_signature_even_when_it_is_right():
    sha1 = hmac.new(VECTOR_SECRET.encode(), VECTOR_BODY, hashlib.sha1).hexdigest()
    assert not github.signature_is_valid(VECTOR_SECRET, VECTOR_BODY, f"sha1={sha1}")


def test_it_refuses_another_secret_and_another_body():
    assert not github.signature_is_valid("another secret", VECTOR_BODY, VECTOR_SIGNATURE)
    assert not github.signature_is_valid(VECTOR_SECRET, b"Hello, World! ", VECTOR_SIGNATURE)


def test_it_refuses_everything_when_the_secret_is_empty():
    assert not github.signature_is_valid("", VECTOR_BODY, github.signature("", VECTOR_BODY))


def test_it_loads_a_json_object():
    assert github.load(b'{"zen": "Keep it logically awesome."}') == {
        "zen": "Keep it logically awesome."
    }


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"[1, 2]", b'"push"', b"null"])
def test_it_refuses_bodies_that_are_not_a_json_object(body):
    with pytest.raises(github.PayloadError, match="not"):
        github.load(body)


def test_it_explains_a_form_encoded_body():
    with pytest.raises(github.PayloadError, match="content type to application/json"):
        github.load(b"payload=%7B%22zen%22%3A%22x%22%7D")


def _decide(event, payload, *, trigger="push", branch="main", repo="acme/shop"):
    return github.decide(
        event=event, payload=payload, branch=branch, trigger=trigger, repo_full_name=repo
    )


def test_a_push_to_the_branch_deploys_its_after_commit():
    d = _decide("push", {"ref": "refs/heads/main", "after": SHA, "deleted": False})
    assert (d.deploy, d.commit) == (True, SHA)


def test_it_refuses_a_push_without_a_ref():
    with pytest.raises(github.PayloadError, match="'ref'"):
        _decide("push", {"after": SHA})


def test_it_refuses_a_push_whose_after_is_not_a_full_sha():
    with pytest.raises(github.PayloadError, match="after is not a full commit SHA"):
        _decide("push", {"ref": "refs/heads/main", "after": "6113728"})


def test_it_names_both_branches_when_it_ignores_a_push():
    d = _decide("push", {"ref": "refs/heads/dev", "after": SHA}, branch="release/v2")
    assert not d.deploy
    assert d.reason == "push to refs/heads/dev, app deploys refs/heads/release/v2"
    assert d.commit == SHA


def test_a_run_from_a_fork_never_deploys_even_on_a_branch_named_like_ours():
    payload = {
        "action": "completed",
        "workflow_run": {
            "name": "CI",
            "head_sha": SHA,
            "head_branch": "main",
            "event": "push",
            "conclusion": "success",
            "head_repository": {"full_name": "mallory/shop"},
        },
    }
    d = _decide("workflow_run", payload, trigger="workflow_run")
    assert not d.deploy
    assert "mallory/shop" in d.reason and "acme/shop" in d.reason


def test_a_run_compares_the_repository_case_insensitively():
    payload = {
        "action": "completed",
        "workflow_run": {
            "head_sha": SHA,
            "head_branch": "main",
            "event": "push",
            "conclusion": "success",
            "head_repository": {"full_name": "ACME/Shop"},
        },
    }
    assert _decide("workflow_run", payload, trigger="workflow_run").deploy


@pytest.mark.parametrize("head_repository", [None, {}, {"full_name": ""}])
def test_a_run_that_does_not_name_its_repository_never_deploys(head_repository):
    payload = {
        "action": "completed",
        "workflow_run": {
            "head_sha": SHA,
            "head_branch": "main",
            "event": "push",
            "conclusion": "success",
            "head_repository": head_repository,
        },
    }
    assert not _decide("workflow_run", payload, trigger="workflow_run", repo="").deploy


def test_it_refuses_a_workflow_run_without_its_run():
    with pytest.raises(github.PayloadError, match="'workflow_run'"):
        _decide("workflow_run", {"action": "completed"}, trigger="workflow_run")


def test_it_refuses_a_delivery_without_an_event():
    with pytest.raises(github.PayloadError, match="X-GitHub-Event"):
        _decide("", {})


def test_a_ping_warns_when_the_hook_does_not_send_the_apps_trigger():
    d = _decide("ping", {"hook": {"events": ["push"]}}, trigger="workflow_run")
    assert not d.deploy
    assert "add workflow_run to its events" in d.reason
    assert "add" not in _decide("ping", {"hook": {"events": ["*"]}}).reason
