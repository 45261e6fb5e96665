"""Requests refused before anything is recorded (bad signature, too large, undecryptable
secret) are counted per app, on one row updated in place, and explained on the app page."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.models import App
from deployments.models import Deploy
from deployments.webhooks import github
from deployments.webhooks import services as webhook_services
from deployments.webhooks.models import RefusedDeliveries, WebhookDelivery
from tests import base
from tests.deployments.webhooks.test_webhook_view import PING, SECRET, post, push_payload

pytestmark = pytest.mark.django_db
cast = base.cast
BODY = json.dumps(push_payload()).encode()
GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


@pytest.fixture(autouse=True)
def _redis_is_down(settings):
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}


def _forged(client, name="shop", **kw):
    return post(client, name, body=BODY, signature=github.signature("forged", BODY), **kw)


def test_a_bad_signature_is_counted_without_a_delivery_row(client, cast):
    resp = _forged(client, delivery=GUID)
    assert resp.status_code == 403
    row = RefusedDeliveries.objects.get()
    assert (row.app, row.count, row.last_reason) == (cast.app, 1, RefusedDeliveries.SIGNATURE)
    assert (row.last_event, row.last_delivery_id) == ("push", GUID)
    assert not WebhookDelivery.objects.exists() and not Deploy.objects.exists()


def test_a_flood_of_unsigned_requests_writes_one_row(client, cast):
    for _ in range(40):
        post(client, "shop", body=BODY, extra={"X-Hub-Signature-256": None})
    assert RefusedDeliveries.objects.count() == 1
    assert RefusedDeliveries.objects.get().count == 40
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize(
    ("event", "delivery"),
    [
        ("<script>alert(1)</script>", "<img src=x>"),
        ("push" * 20, "d" * 101),
        ("Push", "a b"),
        ("", ""),
        ("push\n", "guid\n"),
    ],
)
def test_headers_that_do_not_look_like_githubs_are_not_kept(client, cast, event, delivery):
    headers = {"X-GitHub-Event": event or None, "X-GitHub-Delivery": delivery or None}
    _forged(client, extra=headers)
    row = RefusedDeliveries.objects.get()
    assert (row.count, row.last_event, row.last_delivery_id) == (1, "", "")


def test_the_count_restarts_after_a_quiet_day(client, cast):
    _forged(client)
    _forged(client)
    RefusedDeliveries.objects.update(since=timezone.now() - timedelta(hours=25))
    _forged(client)
    row = RefusedDeliveries.objects.get()
    assert row.count == 1 and timezone.now() - row.since < timedelta(minutes=1)


def test_refusals_a_day_old_are_not_shown(cast):
    webhook_services.webhook_refused(app=cast.app, reason=RefusedDeliveries.SIGNATURE)
    assert webhook_services.webhook_refusals(app=cast.app).count == 1
    RefusedDeliveries.objects.update(last=timezone.now() - timedelta(hours=25))
    assert webhook_services.webhook_refusals(app=cast.app) is None


def test_each_app_has_its_own_count_and_an_unknown_app_none(client, cast):
    other = App.objects.create(name="blog", repo_url="https://github.com/a/blog", branch="main")
    _forged(client)
    _forged(client, "blog")
    _forged(client, "blog")
    assert post(client, "nosuchapp", body=BODY).status_code == 404
    counts = dict(RefusedDeliveries.objects.values_list("app__name", "count"))
    assert counts == {"shop": 1, "blog": 2}
    assert other.refused_deliveries.count == 2


def test_a_body_over_25_mb_is_counted_as_too_large(client, cast):
    assert post(client, "shop", body=b"x" * (25 * 1024 * 1024 + 1)).status_code == 413
    assert RefusedDeliveries.objects.get().last_reason == RefusedDeliveries.TOO_LARGE


def test_an_undecryptable_secret_is_counted_as_such(client, cast):
    App.objects.filter(pk=cast.app.pk).update(webhook_secret_token="not-a-fernet-token")
    assert post(client, "shop", PING, event="ping").status_code == 500
    assert RefusedDeliveries.objects.get().last_reason == RefusedDeliveries.SECRET


def test_a_valid_delivery_is_not_counted(client, cast):
    assert post(client, "shop", PING, event="ping", secret=SECRET).status_code == 200
    assert not RefusedDeliveries.objects.exists()


# --- the app page explains them ----------------------------------------------------------

SEES = {"owner", "admin", "member", "viewer", "superuser"}


@pytest.mark.parametrize(
    "who", ["owner", "admin", "member", "viewer", "superuser", "staff", "outsider"]
)
def test_the_app_page_explains_refusals_to_everyone_who_sees_the_app(cast, who):
    github_client = Client()
    for _ in range(3):
        _forged(github_client, event="<b>push</b>", delivery=GUID)
    viewer = Client()
    viewer.force_login(getattr(cast, who))
    resp = viewer.get("/apps/shop/")
    if who not in SEES:
        assert resp.status_code == 404
        return
    html = resp.content.decode()
    (panel,) = [p for p in html.split("<p ") if 'id="refused-deliveries"' in p]
    assert "3 deliveries were refused since" in panel
    assert "bad signature (the secret in GitHub does not match" in panel
    assert "regenerate_webhook_secret shop" in panel
    assert f"delivery <code>{GUID}</code>" in panel
    assert "<b>push</b>" not in html and "&lt;b&gt;" not in panel  # not kept, not shown


def test_one_refusal_is_singular_and_none_shows_nothing(client, cast):
    client.force_login(cast.owner)
    assert 'id="refused-deliveries"' not in client.get("/apps/shop/").content.decode()
    _forged(Client())
    html = client.get("/apps/shop/").content.decode()
    assert "1 delivery was refused since" in html
