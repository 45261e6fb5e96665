from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from deployments import selectors, services
from deployments.models import Deploy
from tests.factories import AppFactory, DeployFactory, ImageFactory

pytestmark = pytest.mark.django_db


def test_a_finished_deploy_cannot_be_finished_again():
    d = DeployFactory(status=Deploy.Status.BUILDING)
    assert d.mark_failed("boom")
    assert not d.mark_live()
    assert not d.mark_cancelled()
    d.refresh_from_db()
    assert (d.status, d.error) == (Deploy.Status.FAILED, "boom")


def test_only_a_queued_deploy_is_superseded():
    a = DeployFactory(status=Deploy.Status.BUILDING)
    b = DeployFactory(app=a.app)
    assert not a.mark_superseded(b)


def test_creating_a_deploy_supersedes_older_queued_ones(monkeypatch):
    monkeypatch.setattr(services, "deploy_enqueue", lambda **kw: True)
    app = AppFactory()
    running = DeployFactory(app=app, status=Deploy.Status.BUILDING)
    old = DeployFactory(app=app)
    new = services.deploy_create(app=app, commit="c" * 40)
    old.refresh_from_db()
    running.refresh_from_db()
    assert old.status == Deploy.Status.SUPERSEDED and old.error == f"superseded by deploy #{new.pk}"
    assert running.status == Deploy.Status.BUILDING


def test_deploy_create_refuses_a_short_sha():
    with pytest.raises(ValidationError, match="40"):
        services.deploy_create(app=AppFactory(), commit="abc123")


def _went_live(app, trigger="manual", source=None, n=[0]):  # noqa: B006
    n[0] += 1
    image = ImageFactory(app=app, commit=f"{n[0]:040d}")
    d = DeployFactory(
        app=app,
        trigger=trigger,
        source=source,
        image=image,
        commit=image.commit,
        status=Deploy.Status.DEPLOYING,
        spec={"image": "x"},
    )
    for old in app.deploys.filter(status=Deploy.Status.LIVE):
        old.mark_retired()
    assert d.mark_live()
    return d


def test_rollback_walks_back_and_never_returns_to_the_bad_release(monkeypatch):
    monkeypatch.setattr(services, "deploy_enqueue", lambda **kw: True)
    app = AppFactory()
    l1, l2, l3 = _went_live(app), _went_live(app), _went_live(app)
    assert [d.pk for d in selectors.release_stack(app)] == [l1.pk, l2.pk, l3.pk]
    r1 = services.rollback_create(app=app)
    assert (r1.source, r1.trigger) == (l2, "rollback")
    r1.delete()
    back_to_l2 = _went_live(app, "rollback", source=l2)
    assert [d.pk for d in selectors.release_stack(app)] == [l1.pk, l2.pk]
    assert back_to_l2.status == Deploy.Status.LIVE
    assert services.rollback_create(app=app).source == l1
    Deploy.objects.filter(status=Deploy.Status.QUEUED).delete()
    _went_live(app, "rollback", source=l1)
    with pytest.raises(ValidationError, match="no earlier live release"):
        services.rollback_create(app=app)
    # A redeploy of the current release does not count as a release of its own.
    current = selectors.live_deploy(app)
    _went_live(app, "redeploy", source=current)
    assert [d.pk for d in selectors.release_stack(app)] == [l1.pk]


def test_rollback_to_a_deploy_that_never_went_live_is_refused():
    app = AppFactory()
    failed = DeployFactory(app=app, status=Deploy.Status.FAILED)
    with pytest.raises(ValidationError, match="never went live"):
        services.rollback_create(app=app, to=failed)


def test_the_sweep_fails_orphaned_deploys_but_not_one_another_worker_runs(monkeypatch):
    monkeypatch.setattr(services, "deploy_enqueue", lambda **kw: False)
    orphan = DeployFactory(status=Deploy.Status.BUILDING)
    elsewhere = DeployFactory(status=Deploy.Status.DEPLOYING)
    done = services.deploy_sweep(
        job_exists=lambda pk: True, running_elsewhere=lambda pk: pk == elsewhere.pk
    )
    orphan.refresh_from_db()
    elsewhere.refresh_from_db()
    assert done["failed"] == 1
    assert orphan.status == Deploy.Status.FAILED and "interrupted" in orphan.error
    assert elsewhere.status == Deploy.Status.DEPLOYING
