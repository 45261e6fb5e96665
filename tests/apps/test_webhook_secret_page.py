"""The webhook setup on the pages (issue 15): copy buttons beside the payload URL and the
one-time secret, the setup panel on the settings page, and a new secret made from there
(apps.views_settings.app_webhook_secret): GET asks, POST makes it and shows it this once,
never cached; only the app's admins, every role of tests/base.py's cast."""

from __future__ import annotations

import re

import pytest

from apps import services
from apps.models import App
from tests import base
from tests.deployments.webhooks.test_refused_deliveries import _forged

pytestmark = pytest.mark.django_db
cast = base.cast
ADMINS = ["owner", "admin", "superuser"]
NOT_ADMINS = [("member", 403), ("viewer", 403), ("outsider", 404), ("staff", 404)]
URL = "/apps/shop/settings/webhook-secret/"


@pytest.fixture(autouse=True)
def _a_real_secret(cast):
    """The factory's app has a fixed, readable secret; these tests need one as made."""
    services.app_regenerate_webhook_secret(app=cast.app)


def _secret() -> str:
    return services.app_webhook_secret(app=App.objects.get(name="shop"))


def _copy_button(html: str, target: str) -> str:
    """The copy button for the element #target, which must exist, and follow it."""
    m = re.search(rf'id="{target}">[^<]*</code>(<button [^>]*data-copy="{target}"[^>]*>)', html)
    assert m, f"no copy button right after #{target}"
    return m.group(1)


def test_the_created_page_has_copy_buttons_for_the_url_and_the_secret(client, cast, settings):
    settings.KOYRA_BASE_URL = "http://127.0.0.1:8000"
    client.force_login(cast.owner)
    data = {"name": "blog", "repo_url": "https://github.com/a/blog", "branch": "main"}
    html = client.post("/apps/new/", {**data, "trigger": "push"}).content.decode()
    for target in ("webhook-url", "webhook-secret"):
        button = _copy_button(html, target)
        assert 'type="button"' in button and " hidden" in button  # koyra.js shows it
    # The payload URL GitHub cannot reach is said where it is copied from.
    assert 'id="webhook-unreachable"' in html


def test_the_settings_page_has_the_setup_panel_without_the_secret(client, cast):
    secret = _secret()
    client.force_login(cast.owner)
    html = client.get("/apps/shop/settings/").content.decode()
    assert "/webhooks/github/shop/</code>" in html
    _copy_button(html, "webhook-url")
    assert 'id="webhook-secret"' not in html and secret not in html
    assert "<strong>Just the push event</strong>" in html
    assert f'href="{URL}"' in html


@pytest.mark.parametrize("who", ADMINS)
def test_get_asks_first_and_changes_nothing(client, cast, who):
    before = _secret()
    client.force_login(getattr(cast, who))
    resp = client.get(URL)
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "Replace the webhook secret of shop? The current one stops working at once" in html
    assert f'<form method="post" action="{URL}">' in html
    assert before not in html
    assert _secret() == before


@pytest.mark.parametrize("who", ADMINS)
def test_post_makes_a_new_secret_and_shows_it_once(client, cast, who):
    before = _secret()
    client.force_login(getattr(cast, who))
    resp = client.post(URL)
    assert resp.status_code == 200
    assert "no-store" in resp["Cache-Control"]
    after = _secret()
    assert after != before and re.fullmatch(r"[0-9a-f]{64}", after)
    html = resp.content.decode()
    assert f'<code id="webhook-secret">{after}</code>' in html and before not in html
    _copy_button(html, "webhook-secret")
    _copy_button(html, "webhook-url")
    # Never again: not on the settings page, and a second POST makes yet another one.
    assert after not in client.get("/apps/shop/settings/").content.decode()
    client.post(URL)
    assert _secret() not in (before, after)


@pytest.mark.parametrize(("who", "status"), NOT_ADMINS)
def test_only_admins_may_make_a_new_secret(client, cast, who, status):
    before = _secret()
    client.force_login(getattr(cast, who))
    assert client.get(URL).status_code == status
    assert client.post(URL).status_code == status
    assert _secret() == before


def test_a_new_secret_needs_a_login_and_an_existing_app(client, cast):
    before = _secret()
    resp = client.post(URL)
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")
    client.force_login(cast.superuser)
    assert client.post("/apps/nope/settings/webhook-secret/").status_code == 404
    assert client.put(URL).status_code == 405
    assert _secret() == before


def test_the_refused_deliveries_hint_links_admins_to_the_settings_page(client, cast):
    _forged(client)
    for who, linked in [("owner", True), ("member", False)]:
        client.force_login(getattr(cast, who))
        html = client.get("/apps/shop/").content.decode()
        (panel,) = [p for p in html.split("<p ") if 'id="refused-deliveries"' in p]
        assert ('href="/apps/shop/settings/#webhook"' in panel) == linked
        assert "regenerate_webhook_secret shop" in panel
