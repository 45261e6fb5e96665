"""SPEC §4 against GitHub's OWN payload examples (github_examples/, vendored unmodified from
octokit/webhooks): each file is posted to the real view exactly as it is stored, signed over
its raw bytes, as application/json and as application/x-www-form-urlencoded.

GitHub publishes no forced push, branch deletion, or workflow_run that is in progress, failed
or ran for a push: those are derived in memory from a real example by changing only the named
fields (`_variant`), so the rest of the payload stays what GitHub really sends.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from deployments.models import Deploy
from deployments.webhooks.models import WebhookDelivery
from tests.deployments.webhooks import payloads as gh
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

EXAMPLES = Path(__file__).parent / "github_examples"
PUSH_TAG_DELETED = [
    "api.github.com/push/payload.json",
    "api.github.com/push/with-organization.payload.json",
    "api.github.com/push/with-installation.payload.json",
]
PUSH_TAG_CREATED = ["ghes-35/push/payload.json"]
PUSH_BRANCH = [
    "api.github.com/push/with-new-branch.payload.json",
    "api.github.com/push/with-no-username-committer.payload.json",
]
PING_REPO = ["api.github.com/ping/payload.json", "api.github.com/ping/with-app_id.payload.json"]
PING_ORG = ["api.github.com/ping/with-organization.payload.json"]
RUN_COMPLETED = [
    "api.github.com/workflow_run/completed.payload.json",
    "api.github.com/workflow_run/completed.with-pull-requests.payload.json",
]
RUN_REQUESTED = [
    "api.github.com/workflow_run/requested.payload.json",
    "api.github.com/workflow_run/requested.with-conclusion.payload.json",
]
PUSHES = PUSH_TAG_DELETED + PUSH_TAG_CREATED + PUSH_BRANCH
RUNS = RUN_COMPLETED + RUN_REQUESTED
ALL = PUSHES + PING_REPO + PING_ORG + RUNS


@pytest.fixture(autouse=True)
def _redis_is_down(settings):
    # The view must answer without Redis; the deploy stays queued for the worker's sweep.
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}


@pytest.fixture(params=gh.CONTENT_TYPES, ids=["json", "form"])
def kind(request) -> str:
    return request.param


def _raw(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def _example(name: str) -> dict[str, Any]:
    return json.loads(_raw(name))


def _body(raw: bytes, kind: str) -> bytes:
    """What GitHub sends: the JSON itself, or `payload=<urlencoded JSON>` for a form hook."""
    return raw if kind == gh.JSON else b"payload=" + quote_plus(raw.decode()).encode()


def _post(client, app_name: str, raw: bytes, *, event: str, kind: str, delivery: str = ""):
    return gh.deliver(
        client,
        app_name,
        body=_body(raw, kind),
        event=event,
        content_type=kind,
        delivery=delivery or None,
    )


def _variant(name: str, **changes: Any) -> bytes:
    """The example `name` with only `changes` applied (`a__b` is the nested key a.b)."""
    payload = copy.deepcopy(_example(name))
    for path, value in changes.items():
        *parents, key = path.split("__")
        node = payload
        for parent in parents:
            node = node[parent]
        assert key in node, f"{name} has no {path}: the variant would add, not change, a field"
        node[key] = value
    return json.dumps(payload, indent=2).encode()


def _repo_url(full_name: str) -> str:
    return f"https://github.com/{full_name}.git"


def _push_app(name: str, **overrides: Any):
    """An app that matches what the push example names: its repository and branch."""
    payload = _example(name)
    fields = {
        "name": "hello",
        "repo_url": _repo_url(payload["repository"]["full_name"]),
        "branch": payload["ref"].rpartition("/")[2],
        "trigger": "push",
    }
    return AppFactory(**{**fields, **overrides})


def _ci_app(name: str = RUN_COMPLETED[0], **overrides: Any):
    run = _example(name)["workflow_run"]
    fields = {
        "name": "octo-ci",
        "repo_url": _repo_url(run["head_repository"]["full_name"]),
        "branch": run["head_branch"],
        "trigger": "workflow_run",
    }
    return AppFactory(**{**fields, **overrides})


def _ignored(resp, *fragments: str) -> str:
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "ignored", resp.json()
    reason = resp.json()["reason"]
    for fragment in fragments:
        assert fragment in reason
    assert not Deploy.objects.exists()
    (delivery,) = WebhookDelivery.objects.all()
    assert (delivery.outcome, delivery.reason) == (WebhookDelivery.IGNORED, reason)
    return reason


def _queued(resp, app, commit: str, trigger: str) -> Deploy:
    assert resp.status_code == 202, resp.content
    deploy = Deploy.objects.get()
    assert resp.json() == {"status": "queued", "deploy": deploy.pk}
    assert (deploy.app, deploy.commit, deploy.trigger) == (app, commit, trigger)
    (delivery,) = WebhookDelivery.objects.all()
    assert (delivery.outcome, delivery.deploy, delivery.commit) == (
        WebhookDelivery.ACCEPTED,
        deploy,
        commit,
    )
    return deploy


# --- the vendored files ----------------------------------------------------------------------


def test_every_vendored_example_is_unmodified_and_exercised():
    listed = dict(
        re.findall(
            r"^\| `([^`]+\.json)` \| `[0-9a-f]{40}` \| `([0-9a-f]{40})` \|$",
            (EXAMPLES / "README.md").read_text(),
            re.M,
        )
    )
    on_disk = sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.json"))
    assert sorted(listed) == on_disk == sorted(ALL)
    for name, blob in listed.items():
        raw = _raw(name)
        assert hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest() == blob, name
    assert "Gregor Martynus" in (EXAMPLES / "LICENSE.octokit-webhooks").read_text()


# --- push --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PUSH_BRANCH)
def test_githubs_branch_push_queues_its_after_commit(client, kind, name):
    app = _push_app(name)
    payload = _example(name)
    assert payload["created"] is True and payload["before"] == gh.ZERO  # a new branch
    resp = _post(client, "hello", _raw(name), event="push", kind=kind)
    _queued(resp, app, payload["after"], "push")


@pytest.mark.parametrize("name", PUSH_BRANCH)
def test_a_forced_push_of_the_branch_deploys_too(client, kind, name):
    app = _push_app(name)
    raw = _variant(name, created=False, forced=True, before=gh.BEFORE)
    resp = _post(client, "hello", raw, event="push", kind=kind)
    _queued(resp, app, _example(name)["after"], "push")


@pytest.mark.parametrize("name", PUSH_BRANCH)
def test_the_repository_name_is_compared_case_insensitively(client, kind, name):
    full_name = _example(name)["repository"]["full_name"]
    app = _push_app(name, repo_url=_repo_url(full_name.lower()))
    assert full_name != full_name.lower()
    resp = _post(client, "hello", _raw(name), event="push", kind=kind)
    _queued(resp, app, _example(name)["after"], "push")


@pytest.mark.parametrize("name", PUSHES)
@pytest.mark.parametrize("other", ["Codertocat/Hello-World-fork", "mallory/Hello-World"])
def test_a_push_of_another_repository_is_ignored_naming_both(client, kind, name, other):
    _push_app(name, repo_url=_repo_url(other), branch="master")
    resp = _post(client, "hello", _raw(name), event="push", kind=kind)
    _ignored(resp, "Codertocat/Hello-World", other)


@pytest.mark.parametrize("name", PUSH_BRANCH)
def test_a_push_to_another_branch_is_ignored(client, kind, name):
    _push_app(name, branch="main")
    resp = _post(client, "hello", _raw(name), event="push", kind=kind)
    _ignored(resp, "push to refs/heads/master, app deploys refs/heads/main")


@pytest.mark.parametrize("name", PUSH_BRANCH)
def test_a_push_to_an_app_waiting_for_ci_is_ignored(client, kind, name):
    _push_app(name, trigger="workflow_run")
    resp = _post(client, "hello", _raw(name), event="push", kind=kind)
    _ignored(resp, "waits for CI (trigger workflow_run)")


@pytest.mark.parametrize("name", PUSH_TAG_DELETED + PUSH_TAG_CREATED)
@pytest.mark.parametrize("branch", ["master", "simple-tag"])
def test_githubs_tag_pushes_are_ignored(client, kind, name, branch):
    # Even for an app whose branch is named like the tag: refs/tags/x is never refs/heads/x.
    _push_app(name, branch=branch)
    resp = _post(client, "hello", _raw(name), event="push", kind=kind)
    _ignored(resp, f"tag push (refs/tags/simple-tag): only pushes to refs/heads/{branch} deploy")


@pytest.mark.parametrize("name", PUSH_TAG_DELETED)
def test_a_deleted_branch_is_ignored(client, kind, name):
    # GitHub's deletion example, for a branch instead of a tag.
    _push_app(name, branch="master")
    raw = _variant(name, ref="refs/heads/master")
    resp = _post(client, "hello", raw, event="push", kind=kind)
    _ignored(resp, "refs/heads/master was deleted: nothing to deploy")


# --- ping --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PING_REPO)
def test_githubs_repository_ping_answers_pong(client, kind, name):
    _push_app(PUSH_BRANCH[0], repo_url=_repo_url(_example(name)["repository"]["full_name"]))
    resp = _post(client, "hello", _raw(name), event="ping", kind=kind)
    assert (resp.status_code, resp.json()) == (200, {"status": "pong"})
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.reason == "ping: the webhook reaches Koyra"
    assert not Deploy.objects.exists()


@pytest.mark.parametrize("name", PING_REPO)
def test_a_ping_of_another_repositorys_hook_says_so(client, kind, name):
    _push_app(PUSH_BRANCH[0])  # Codertocat/Hello-World; the ping is Octocoders/Hello-World's
    resp = _post(client, "hello", _raw(name), event="ping", kind=kind)
    assert (resp.status_code, resp.json()) == (200, {"status": "pong"})
    (delivery,) = WebhookDelivery.objects.all()
    assert "Octocoders/Hello-World" in delivery.reason
    assert "Codertocat/Hello-World" in delivery.reason


@pytest.mark.parametrize("name", PING_ORG)
@pytest.mark.parametrize("trigger", ["push", "workflow_run"])
def test_githubs_organization_ping_answers_pong_and_names_the_missing_event(
    client, kind, name, trigger
):
    _push_app(PUSH_BRANCH[0], trigger=trigger)
    resp = _post(client, "hello", _raw(name), event="ping", kind=kind)
    assert (resp.status_code, resp.json()) == (200, {"status": "pong"})
    (delivery,) = WebhookDelivery.objects.all()
    assert f"add {trigger} to its events" in delivery.reason
    assert not Deploy.objects.exists()


# --- workflow_run ------------------------------------------------------------------------------


def _run_for_push(name: str = RUN_COMPLETED[0], **changes: Any) -> bytes:
    return _variant(name, workflow_run__event="push", **changes)


@pytest.mark.parametrize("name", RUN_COMPLETED)
def test_githubs_completed_run_for_a_repository_dispatch_is_ignored(client, kind, name):
    _ci_app(name)
    run = _example(name)["workflow_run"]
    assert (run["conclusion"], run["event"]) == ("success", "repository_dispatch")
    resp = _post(client, "octo-ci", _raw(name), event="workflow_run", kind=kind)
    reason = _ignored(resp, "ran for a repository_dispatch event; only runs for pushes deploy")
    # workflow_run.name is "" in GitHub's example: the reason names workflow.name instead.
    assert reason.startswith("workflow run test:")


@pytest.mark.parametrize("name", RUN_REQUESTED)
def test_githubs_requested_runs_are_ignored_until_they_complete(client, kind, name):
    _ci_app(name)
    resp = _post(client, "octo-ci", _raw(name), event="workflow_run", kind=kind)
    _ignored(resp, "requested, not completed yet")


@pytest.mark.parametrize("name", RUN_COMPLETED)
@pytest.mark.parametrize("workflows", [[], ["test"]])
def test_a_successful_run_for_a_push_queues_its_head_sha(client, kind, name, workflows):
    app = _ci_app(name, workflows=workflows)
    resp = _post(client, "octo-ci", _run_for_push(name), event="workflow_run", kind=kind)
    _queued(resp, app, _example(name)["workflow_run"]["head_sha"], "workflow_run")


def test_the_workflow_gate_matches_workflow_name_when_the_runs_name_is_blank(client, kind):
    # GitHub's example names the workflow only in workflow.name ("test"); the run's own name
    # is "". A gate listing another workflow waits, and says which one it is waiting for.
    _ci_app(workflows=["test", "deploy-checks"])
    resp = _post(client, "octo-ci", _run_for_push(), event="workflow_run", kind=kind)
    _ignored(resp, "waiting for deploy-checks to succeed for 3484a3fb816e")


@pytest.mark.parametrize(("workflows", "queued"), [([], True), (["test"], False)])
def test_a_run_whose_workflow_is_null_is_read(client, kind, workflows, queued):
    # GitHub documents `workflow` as "object or null"; with the run's name "" as in the
    # example, the run has no name at all: it deploys without a gate, never through one.
    app = _ci_app(workflows=workflows)
    resp = _post(client, "octo-ci", _run_for_push(workflow=None), event="workflow_run", kind=kind)
    if queued:
        _queued(resp, app, _example(RUN_COMPLETED[0])["workflow_run"]["head_sha"], "workflow_run")
    else:
        _ignored(resp, "waits for the workflows test (setting workflows), and this run is not")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {
                "action": "in_progress",
                "workflow_run__status": "in_progress",
                "workflow_run__conclusion": None,
            },
            "in_progress, not completed yet",
        ),
        ({"workflow_run__conclusion": "failure"}, "concluded failure; only a success deploys"),
        ({"workflow_run__conclusion": "cancelled"}, "concluded cancelled"),
        ({"workflow_run__head_branch": "feature"}, "ran on branch feature, app deploys master"),
    ],
    ids=["in_progress", "failure", "cancelled", "other-branch"],
)
def test_runs_that_are_not_a_success_on_the_branch_are_ignored(client, kind, changes, reason):
    _ci_app()
    resp = _post(client, "octo-ci", _run_for_push(**changes), event="workflow_run", kind=kind)
    _ignored(resp, reason)


def test_a_run_from_a_fork_is_ignored(client, kind):
    head = copy.deepcopy(_example(RUN_COMPLETED[0])["workflow_run"]["head_repository"])
    head["full_name"] = "mallory/octo-repo"
    _ci_app()
    raw = _run_for_push(workflow_run__head_repository=head)
    resp = _post(client, "octo-ci", raw, event="workflow_run", kind=kind)
    _ignored(resp, "ran on mallory/octo-repo, not on the app's repository octo-org/octo-repo")


@pytest.mark.parametrize("name", RUNS)
def test_a_run_of_another_repository_is_ignored_naming_both(client, kind, name):
    _ci_app(name, repo_url=_repo_url("octo-org/other-repo"))
    raw = _run_for_push(name)
    resp = _post(client, "octo-ci", raw, event="workflow_run", kind=kind)
    _ignored(resp, "octo-org/octo-repo", "octo-org/other-repo")


@pytest.mark.parametrize("name", RUN_COMPLETED)
def test_a_successful_run_for_a_push_app_is_ignored(client, kind, name):
    _ci_app(name, trigger="push")
    resp = _post(client, "octo-ci", _run_for_push(name), event="workflow_run", kind=kind)
    _ignored(resp, "this app deploys on push (trigger push), not after CI")


def test_a_redelivery_of_githubs_queued_example_is_a_duplicate(client, kind):
    _ci_app()
    raw = _run_for_push()
    first = _post(client, "octo-ci", raw, event="workflow_run", kind=kind, delivery="d-1")
    again = _post(client, "octo-ci", raw, event="workflow_run", kind=kind, delivery="d-1")
    assert first.status_code == 202
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert Deploy.objects.count() == 1
