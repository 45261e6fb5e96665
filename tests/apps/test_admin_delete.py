"""The admin's delete of an app, single and bulk, tears down what the app runs (the same
service as `delete_app`), or keeps the row with the error: never a row gone while its
service runs and its name and domains are free for someone else. Only the boundary modules
are patched (tests/deployments/test_teardown.py's in-memory engine and registry)."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.urls import reverse

from apps.models import App
from tests.deployments.test_teardown import Outside
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def outside(monkeypatch):
    return Outside(monkeypatch)


def _messages(res) -> str:
    return " ".join(str(m) for m in res.context["messages"]) if res.context else ""


def test_deleting_one_app_tears_it_down(admin_client, outside):
    app = AppFactory(name="shop")
    res = admin_client.post(reverse("admin:apps_app_delete", args=(app.pk,)), {"post": "yes"})
    assert res.status_code == 302
    assert not App.objects.filter(name="shop").exists()
    assert "shop_web" not in outside.services
    assert [s["id"] for s in outside.secrets] == ["s3"]
    assert outside.manifests["shop"] == {}
    assert LogEntry.objects.filter(object_id=str(app.pk), action_flag=DELETION).exists()


def test_when_the_engine_is_down_the_app_stays_with_the_error(admin_client, outside):
    app = AppFactory(name="shop", domains=["shop.example.com"])
    outside.down = True
    res = admin_client.post(
        reverse("admin:apps_app_delete", args=(app.pk,)), {"post": "yes"}, follow=True
    )
    assert res.status_code == 200
    assert res.redirect_chain[-1][0] == reverse("admin:apps_app_change", args=(app.pk,))
    text = _messages(res)
    assert "Cannot reach the Docker engine" in text and "stays in Koyra" in text
    assert "deleted successfully" not in text
    assert App.objects.filter(name="shop", domains=["shop.example.com"]).exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def test_the_bulk_delete_tears_down_each_app(admin_client, outside):
    apps = [AppFactory(name="shop"), AppFactory(name="other")]
    res = admin_client.post(
        reverse("admin:apps_app_changelist"),
        {"action": "delete_selected", "_selected_action": [a.pk for a in apps], "post": "yes"},
        follow=True,
    )
    assert res.status_code == 200
    assert not App.objects.exists()
    assert outside.services == {} and outside.secrets == []
    assert outside.manifests == {"shop": {}, "other": {}}
    assert "Successfully deleted 2" in _messages(res)


def test_the_bulk_delete_keeps_the_apps_it_could_not_tear_down(admin_client, outside, monkeypatch):
    apps = [AppFactory(name="shop"), AppFactory(name="other")]
    real = outside.service_remove

    def refuse_shop(name):
        if name.startswith("shop"):
            raise OSError("engine went away")
        return real(name)

    monkeypatch.setattr("deployments.boundaries.engine.service_remove", refuse_shop)
    res = admin_client.post(
        reverse("admin:apps_app_changelist"),
        {"action": "delete_selected", "_selected_action": [a.pk for a in apps], "post": "yes"},
        follow=True,
    )
    text = _messages(res)
    assert list(App.objects.values_list("name", flat=True)) == ["shop"]
    assert "engine went away" in text and "Not deleted: shop" in text
    assert "Successfully deleted" not in text
    assert "shop_web" in outside.services and "other_web" not in outside.services
