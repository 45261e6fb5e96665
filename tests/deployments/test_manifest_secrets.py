"""Which secrets an app needs (selectors.manifest_secrets): the newest manifest a build read,
even one whose deploy failed for a missing secret, then the live release's."""

from __future__ import annotations

import pytest

from apps import services as app_services
from deployments import selectors
from deployments.models import Deploy
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db


def test_nothing_read_and_nothing_live_needs_nothing():
    app = AppFactory()
    DeployFactory(app=app, status=Deploy.Status.FAILED)  # failed before its manifest was read
    assert selectors.manifest_secrets(app) == []


def test_a_first_deploy_that_failed_for_a_missing_secret_still_names_it():
    app = AppFactory()
    DeployFactory(app=app, status=Deploy.Status.FAILED, manifest_secrets=["DATABASE_URL", "KEY"])
    assert selectors.manifest_secrets(app) == ["DATABASE_URL", "KEY"]
    assert app_services.app_secrets_needed(app=app) == ["DATABASE_URL", "KEY"]


def test_the_newest_manifest_first_then_what_the_live_release_reapplies():
    app = AppFactory()
    DeployFactory(
        app=app,
        status=Deploy.Status.LIVE,
        spec={"secrets": ["OLD", "SHARED"]},
        manifest_secrets=["OLD", "SHARED"],
    )
    DeployFactory(app=app, status=Deploy.Status.FAILED, manifest_secrets=["SHARED", "NEW"])
    DeployFactory(app=app, status=Deploy.Status.FAILED)  # a newer one that read no manifest
    assert selectors.manifest_secrets(app) == ["SHARED", "NEW", "OLD"]


def test_a_manifest_that_dropped_every_secret_leaves_the_live_releases():
    app = AppFactory()
    DeployFactory(app=app, status=Deploy.Status.LIVE, spec={"secrets": ["A"]})  # before the field
    DeployFactory(app=app, status=Deploy.Status.FAILED, manifest_secrets=[])
    assert selectors.manifest_secrets(app) == ["A"]


def test_another_apps_manifests_do_not_count():
    app, other = AppFactory(), AppFactory()
    DeployFactory(app=other, status=Deploy.Status.FAILED, manifest_secrets=["THEIRS"])
    assert selectors.manifest_secrets(app) == []
