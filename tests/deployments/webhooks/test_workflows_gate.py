"""The app setting `workflows` (SPEC §4): a commit deploys once every named workflow has a
successful run for that same head_sha, whatever the order; without it, the first successful
run deploys. A commit is queued once."""

from __future__ import annotations

import pytest

from deployments.models import Deploy
from deployments.webhooks.models import WebhookDelivery, WorkflowPass
from tests.deployments.webhooks import payloads as gh
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db
OTHER_SHA = "b" * 40


@pytest.fixture(autouse=True)
def _redis_is_down(settings):
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}


@pytest.fixture(params=gh.CONTENT_TYPES, ids=["json", "form"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def gated(db):
    return AppFactory(
        name="octo", repo_url=gh.REPO_URL, trigger="workflow_run", workflows=["Tests", "Build"]
    )


def _run(client, name: str, kind: str = gh.JSON, **kwargs):
    return gh.deliver(
        client,
        "octo",
        gh.workflow_run(name=name, **kwargs),
        event="workflow_run",
        content_type=kind,
    )


@pytest.mark.parametrize("order", [("Tests", "Build"), ("Build", "Tests")])
def test_the_commit_deploys_once_every_named_workflow_succeeded_in_any_order(
    client, gated, kind, order
):
    first = _run(client, order[0], kind)
    assert first.status_code == 200
    assert first.json()["status"] == "ignored"
    assert f"waiting for {order[1]} to succeed for {gh.SHA[:12]}" in first.json()["reason"]
    assert not Deploy.objects.exists()

    second = _run(client, order[1], kind)

    deploy = Deploy.objects.get()
    assert second.status_code == 202
    assert second.json() == {"status": "queued", "deploy": deploy.pk}
    assert (deploy.commit, deploy.trigger) == (gh.SHA, "workflow_run")
    assert (
        "every workflow it waits for succeeded"
        in WebhookDelivery.objects.get(outcome=WebhookDelivery.ACCEPTED).reason
    )


def test_a_failed_workflow_holds_the_deploy_until_a_rerun_succeeds(client, gated, kind):
    assert _run(client, "Tests", kind, conclusion="failure").json()["status"] == "ignored"
    assert _run(client, "Build", kind).json()["status"] == "ignored"  # Tests has not passed
    assert not Deploy.objects.exists()
    assert list(WorkflowPass.objects.values_list("workflow", flat=True)) == ["Build"]

    rerun = _run(client, "Tests", kind, run_id=30433643)

    assert rerun.status_code == 202
    assert Deploy.objects.get().commit == gh.SHA


def test_a_workflow_the_app_does_not_name_never_deploys(client, gated, kind):
    resp = _run(client, "Lint", kind)
    assert resp.status_code == 200
    reason = resp.json()["reason"]
    assert "waits for the workflows Tests, Build" in reason and "Lint is not one of them" in reason
    assert not WorkflowPass.objects.exists()
    _run(client, "Tests", kind)
    assert not Deploy.objects.exists()  # Lint did not stand in for Build


def test_successes_for_different_commits_do_not_add_up(client, gated):
    _run(client, "Tests", sha=gh.SHA)
    resp = _run(client, "Build", sha=OTHER_SHA)
    assert resp.json()["status"] == "ignored"
    assert "waiting for Tests" in resp.json()["reason"]
    assert not Deploy.objects.exists()


def test_successes_of_another_app_do_not_count(client, gated):
    other = AppFactory(
        name="other", repo_url=gh.REPO_URL, trigger="workflow_run", workflows=["Tests", "Build"]
    )
    WorkflowPass.objects.create(app=other, commit=gh.SHA, workflow="Tests")
    assert _run(client, "Build").json()["status"] == "ignored"


def test_a_rerun_after_the_deploy_is_queued_does_not_queue_it_again(client, gated):
    _run(client, "Tests")
    _run(client, "Build")
    deploy = Deploy.objects.get()
    again = _run(client, "Tests", run_id=30433699)
    assert again.status_code == 200
    assert f"deploy #{deploy.pk} of it is queued already" in again.json()["reason"]
    assert Deploy.objects.count() == 1


def test_a_commit_whose_deploy_failed_deploys_again_on_the_next_success(client, gated):
    _run(client, "Tests")
    _run(client, "Build")
    Deploy.objects.update(status=Deploy.Status.FAILED)
    assert _run(client, "Build", run_id=30433700).status_code == 202
    assert Deploy.objects.count() == 2


def test_without_the_setting_the_first_successful_run_deploys(client, kind):
    AppFactory(name="octo", repo_url=gh.REPO_URL, trigger="workflow_run")
    assert _run(client, "Lint", kind).status_code == 202
    # Another workflow's success for the same commit adds nothing while that deploy waits.
    resp = _run(client, "Tests", kind)
    assert resp.status_code == 200 and "queued already" in resp.json()["reason"]
    assert Deploy.objects.count() == 1
    assert not WorkflowPass.objects.exists()


def test_a_redelivery_of_a_waiting_run_is_judged_again(client, gated):
    first = gh.deliver(
        client, "octo", gh.workflow_run(name="Tests"), event="workflow_run", delivery="d-t"
    )
    assert first.json()["status"] == "ignored"
    _run(client, "Build")  # completes the set: deploys
    again = gh.deliver(
        client, "octo", gh.workflow_run(name="Tests"), event="workflow_run", delivery="d-t"
    )
    assert again.json()["status"] == "ignored"  # its commit is queued already
    assert Deploy.objects.count() == 1
    assert WorkflowPass.objects.filter(workflow="Tests").count() == 1
