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


def test_it_explains_a_form_encoded_body_sent_as_json():
    # SPEC §4 now accepts form-encoded bodies: only a wrong Content-Type is explained.
    with pytest.raises(github.PayloadError, match="application/x-www-form-urlencoded"):
        github.load(b"payload=%7B%22zen%22%3A%22x%22%7D", "application/json")


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    "content_type", [FORM, "Application/X-WWW-Form-Urlencoded", f"{FORM}; charset=utf-8"]
)
def test_it_loads_the_payload_field_of_a_form_encoded_body(content_type):
    body = b"payload=%7B%22zen%22%3A+%22Keep+it+logically+awesome.%22%7D"
    assert github.load(body, content_type) == {"zen": "Keep it logically awesome."}


@pytest.mark.parametrize(
    "body",
    [b"", b"payload", b"=x", b"payload=1&payload=2", b"a=1&payload=%7B%7D", b"payload=%C3%28"],
)
def test_it_refuses_form_bodies_that_are_not_one_payload_field(body):
    with pytest.raises(github.PayloadError, match="form-encoded body"):
        github.load(body, FORM)


@pytest.mark.parametrize("content_type", ["application/json", "", FORM])
def test_json_nested_deeper_than_the_stack_is_a_payload_error(content_type):
    text = "[" * 100_000 + "]" * 100_000
    body = text.encode() if content_type != FORM else b"payload=" + text.encode()
    with pytest.raises(github.PayloadError, match="nested too deeply"):
        github.load(body, content_type)


def test_json_nested_as_deep_as_github_ever_does_is_read():
    body = ('{"a": ' * 200 + "1" + "}" * 200).encode()
    assert isinstance(github.load(body, "application/json"), dict)


def _decide(event, payload, *, trigger="push", branch="main", repo="acme/shop"):
    # Every push and workflow_run names its repository (SPEC §4 checks it first).
    payload = {"repository": {"full_name": "acme/shop"}, **payload}
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
        "repository": {"full_name": "Acme/SHOP"},
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


@pytest.mark.parametrize("other", ["acme/shop-fork", "mallory/shop", "acme/sho"])
def test_a_push_of_another_repository_never_deploys_and_names_both(other):
    payload = {"ref": "refs/heads/main", "after": SHA, "repository": {"full_name": other}}
    d = _decide("push", payload)
    assert not d.deploy
    assert d.reason == (
        f"push to refs/heads/main is for the repository {other}, not the app's repository acme/shop"
    )
    assert d.commit == SHA


@pytest.mark.parametrize("repository", [None, "acme/shop", {}, {"full_name": ""}, {"name": "x"}])
def test_a_push_that_does_not_name_its_repository_is_malformed(repository):
    payload = {"ref": "refs/heads/main", "after": SHA, "repository": repository}
    if repository is None:
        del payload["repository"]
    with pytest.raises(github.PayloadError, match="repository"):
        github.decide(
            event="push", payload=payload, branch="main", trigger="push", repo_full_name="a/b"
        )


def test_an_app_whose_url_names_no_repository_deploys_nothing():
    payload = {"ref": "refs/heads/main", "after": SHA, "repository": {"full_name": "acme/shop"}}
    d = github.decide(
        event="push", payload=payload, branch="main", trigger="push", repo_full_name=""
    )
    assert not d.deploy
    assert "its URL names no owner/name" in d.reason


def _run(**run):
    base = {
        "name": "Tests",
        "head_sha": SHA,
        "head_branch": "main",
        "event": "push",
        "conclusion": "success",
        "head_repository": {"full_name": "acme/shop"},
    }
    return {"action": "completed", "workflow_run": {**base, **run}}


def test_a_run_of_another_repositorys_workflow_never_deploys():
    payload = {**_run(), "repository": {"full_name": "acme/infra"}}
    d = github.decide(
        event="workflow_run",
        payload=payload,
        branch="main",
        trigger="workflow_run",
        repo_full_name="acme/shop",
    )
    assert not d.deploy
    assert "acme/infra" in d.reason and "acme/shop" in d.reason


@pytest.mark.parametrize("head_repository", [None, {}, {"full_name": ""}, {"full_name": 7}])
def test_a_run_of_our_repository_without_its_head_repository_never_deploys(head_repository):
    d = _decide("workflow_run", _run(head_repository=head_repository), trigger="workflow_run")
    assert not d.deploy
    assert "not on the app's repository acme/shop" in d.reason


def test_a_decision_names_the_workflow_of_the_run():
    assert _decide("workflow_run", _run(), trigger="workflow_run").workflow == "Tests"
    payload = _run(name=None)
    payload["workflow"] = {"name": "Build"}
    assert _decide("workflow_run", payload, trigger="workflow_run").workflow == "Build"
