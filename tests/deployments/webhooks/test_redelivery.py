"""X-GitHub-Delivery is unique per *deploy* (SPEC §4): GitHub's "Redeliver" of a delivery that
queued a deploy is a duplicate; of one that was ignored or refused, it is judged again, so a
user who fixed the app's branch, trigger or repository can retry. Every attempt is listed."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client

from apps import services as app_services
from apps.models import App
from deployments.models import Deploy
from deployments.webhooks.models import WebhookDelivery
from tests.deployments.webhooks import payloads as gh
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db
GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


@pytest.fixture(autouse=True)
def _redis_is_down(settings):
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}


@pytest.fixture(params=gh.CONTENT_TYPES, ids=["json", "form"])
def kind(request) -> str:
    return request.param


def _attempts(delivery_id: str = GUID) -> list[str]:
    rows = WebhookDelivery.objects.filter(delivery_id=delivery_id).order_by("id")
    return list(rows.values_list("outcome", flat=True))


def test_a_redelivery_of_an_accepted_delivery_is_a_duplicate_and_listed(client, kind):
    AppFactory(name="octo", repo_url=gh.REPO_URL)
    first = gh.deliver(client, "octo", gh.push(), content_type=kind, delivery=GUID)
    again = gh.deliver(client, "octo", gh.push(), content_type=kind, delivery=GUID)
    assert first.status_code == 202
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert Deploy.objects.count() == 1
    dup = WebhookDelivery.objects.get(outcome=WebhookDelivery.DUPLICATE)
    assert dup.reason.startswith(f"redelivery of {GUID}") and "(accepted)" in dup.reason
    assert _attempts() == [WebhookDelivery.ACCEPTED]


def test_a_redelivery_after_fixing_the_branch_is_judged_again_and_deploys(client, kind):
    app = AppFactory(name="octo", repo_url=gh.REPO_URL, branch="master")
    payload = gh.push(ref="refs/heads/main")
    first = gh.deliver(client, "octo", payload, content_type=kind, delivery=GUID)
    assert first.json() == {
        "status": "ignored",
        "reason": "push to refs/heads/main, app deploys refs/heads/master",
    }
    app_services.app_update(app=app, branch="main")

    again = gh.deliver(client, "octo", payload, content_type=kind, delivery=GUID)

    deploy = Deploy.objects.get()
    assert again.status_code == 202
    assert again.json() == {"status": "queued", "deploy": deploy.pk}
    assert deploy.commit == gh.SHA
    assert _attempts() == [WebhookDelivery.IGNORED, WebhookDelivery.ACCEPTED]
    # ... and from then on, that delivery id has queued its deploy.
    third = gh.deliver(client, "octo", payload, content_type=kind, delivery=GUID)
    assert third.json() == {"status": "duplicate"}
    assert Deploy.objects.count() == 1


def test_a_redelivery_after_fixing_the_trigger_deploys(client, kind):
    app = AppFactory(name="octo", repo_url=gh.REPO_URL)  # trigger push
    run = gh.workflow_run()
    first = gh.deliver(client, "octo", run, event="workflow_run", content_type=kind, delivery=GUID)
    assert first.json()["status"] == "ignored"
    app_services.app_update(app=app, trigger="workflow_run")
    again = gh.deliver(client, "octo", run, event="workflow_run", content_type=kind, delivery=GUID)
    assert again.status_code == 202


def test_a_redelivery_after_fixing_the_repository_deploys(client, kind):
    # The app was made with the repository's old name; an admin corrects its URL.
    AppFactory(name="octo", repo_url="https://github.com/octo-org/old-name.git")
    first = gh.deliver(client, "octo", gh.push(), content_type=kind, delivery=GUID)
    assert "octo-org/old-name" in first.json()["reason"]
    App.objects.filter(name="octo").update(repo_url=gh.REPO_URL)
    again = gh.deliver(client, "octo", gh.push(), content_type=kind, delivery=GUID)
    assert again.status_code == 202


def test_a_refused_delivery_is_judged_again_too(client):
    AppFactory(name="octo", repo_url=gh.REPO_URL)
    bad = gh.deliver(client, "octo", body=b"payload=%7B", content_type=gh.FORM, delivery=GUID)
    assert bad.status_code == 400
    good = gh.deliver(client, "octo", gh.push(), content_type=gh.FORM, delivery=GUID)
    assert good.status_code == 202
    assert _attempts() == [WebhookDelivery.REFUSED, WebhookDelivery.ACCEPTED]


def test_ignored_attempts_of_one_delivery_are_each_listed(client):
    AppFactory(name="octo", repo_url=gh.REPO_URL)
    for _ in range(3):
        gh.deliver(client, "octo", gh.push(ref="refs/tags/v1"), delivery=GUID)
    assert _attempts() == [WebhookDelivery.IGNORED] * 3
    assert not Deploy.objects.exists()


def test_the_database_refuses_a_second_accepted_row_for_one_delivery_id():
    app = AppFactory(name="octo")
    WebhookDelivery.objects.create(app=app, delivery_id=GUID, outcome=WebhookDelivery.ACCEPTED)
    WebhookDelivery.objects.create(app=app, delivery_id=GUID, outcome=WebhookDelivery.IGNORED)
    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.create(app=app, delivery_id=GUID, outcome=WebhookDelivery.ACCEPTED)
    # No id (refused without one, duplicates) is never unique.
    for _ in range(2):
        WebhookDelivery.objects.create(app=app, delivery_id=None, outcome=WebhookDelivery.ACCEPTED)


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_after_a_fix_queue_exactly_one_deploy():
    app = AppFactory(name="octo", repo_url=gh.REPO_URL, branch="master")
    gh.deliver(Client(), "octo", gh.push(), delivery=GUID)  # ignored: wrong branch
    app_services.app_update(app=app, branch="main")
    barrier = threading.Barrier(6)
    answers: list[tuple[int, dict]] = []

    def redeliver() -> None:
        try:
            barrier.wait()
            resp = gh.deliver(Client(), "octo", gh.push(), delivery=GUID)
            answers.append((resp.status_code, resp.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=redeliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    deploy = Deploy.objects.get()
    assert sorted(code for code, _ in answers) == [200] * 5 + [202]
    assert all(a == {"status": "duplicate"} for code, a in answers if code == 200)
    assert _attempts() == [WebhookDelivery.IGNORED, WebhookDelivery.ACCEPTED]
    assert WebhookDelivery.objects.get(outcome=WebhookDelivery.ACCEPTED).deploy == deploy
