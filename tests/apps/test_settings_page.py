"""The app's settings page (/apps/<app>/settings/, apps.views_settings): env vars set and
unset through the same services as set_env/unset_env, refusals inline with nothing changed,
and deleting the app behind a typed confirmation, through the same teardown as delete_app.
Every role of tests/base.py's cast; only the engine and registry boundaries are patched (the
in-memory ones of tests/deployments/test_teardown.py)."""

from __future__ import annotations

import pytest

from apps.models import App
from deployments.models import Deploy
from secrets_vault import services as vault
from tests import base
from tests.deployments.test_teardown import Outside
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db
cast = base.cast
ADMINS = ["owner", "admin", "superuser"]
NOT_ADMINS = [("member", 403), ("viewer", 403), ("outsider", 404), ("staff", 404)]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def outside(monkeypatch):
    return Outside(monkeypatch)


def _env(app: App) -> dict[str, str]:
    app.refresh_from_db()
    return app.env


# --- the page -------------------------------------------------------------------------------


def test_the_page_lists_env_vars_escaped_and_flags_public_ones(client, cast):
    cast.app.env = {"NEXT_PUBLIC_API": "https://api", "HTML": "<script>alert(1)</script>"}
    cast.app.save()
    client.force_login(cast.owner)
    html = client.get("/apps/shop/settings/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "public prefix: a build arg too" in html
    assert 'action="/apps/shop/settings/env/HTML/unset/"' in html
    assert 'href="/apps/shop/delete/"' in html


def test_the_page_lists_the_live_manifests_secrets_set_or_missing(client, cast):
    DeployFactory(app=cast.app, status=Deploy.Status.LIVE, spec={"secrets": ["A_SET", "B_GONE"]})
    vault.secret_set(app=cast.app, key="A_SET", value="value-never-shown")
    client.force_login(cast.owner)
    html = client.get("/apps/shop/settings/").content.decode()
    assert '<code>A_SET</code> <span class="muted small">set</span>' in html
    assert '<code>B_GONE</code> <span class="error small">missing' in html
    assert "value-never-shown" not in html


@pytest.mark.parametrize("who", ADMINS)
def test_an_admin_sets_and_unsets_an_env_var(client, cast, who):
    client.force_login(getattr(cast, who))
    resp = client.post("/apps/shop/settings/env/", {"key": "LOG_LEVEL", "value": " debug\n"})
    assert resp.status_code == 302 and resp["Location"] == "/apps/shop/settings/#env"
    assert _env(cast.app) == {"LOG_LEVEL": " debug\n"}  # exactly as typed
    page = client.get("/apps/shop/settings/").content.decode()
    assert "LOG_LEVEL set. Redeploy shop to apply it." in page
    resp = client.post("/apps/shop/settings/env/LOG_LEVEL/unset/")
    assert resp.status_code == 302 and _env(cast.app) == {}


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"key": "1BAD", "value": "v"}, "not a valid environment variable name"),
        ({"key": "OK", "value": "a\x00b"}, "Null characters are not allowed"),
        ({"key": "OK", "value": "a\x1bb"}, "control character"),
        ({"key": "OK", "value": "x" * 33000}, "over 32 KiB"),
        ({"key": "API_KEY", "value": "v"}, "API_KEY is a secret of shop"),
        ({"key": "", "value": "v"}, "This field is required"),
    ],
)
def test_a_refused_env_var_is_shown_inline_and_nothing_changes(client, cast, form, message):
    vault.secret_set(app=cast.app, key="API_KEY", value="s3cr3t-value")
    client.force_login(cast.owner)
    resp = client.post("/apps/shop/settings/env/", form)
    assert resp.status_code == 400
    assert message in resp.content.decode()
    assert _env(cast.app) == {}
    assert "s3cr3t-value" not in resp.content.decode()


def test_unsetting_a_name_that_is_not_set_says_so(client, cast):
    client.force_login(cast.owner)
    resp = client.post("/apps/shop/settings/env/NOPE/unset/", follow=True)
    assert "NOPE is not an env var of shop" in resp.content.decode()


@pytest.mark.parametrize(("who", "status"), NOT_ADMINS)
def test_env_vars_are_the_admins_404_for_who_cannot_see_the_app(client, cast, who, status):
    cast.app.env = {"KEEP": "1"}
    cast.app.save()
    client.force_login(getattr(cast, who))
    assert client.get("/apps/shop/settings/").status_code == status
    assert client.post("/apps/shop/settings/env/", {"key": "X", "value": "1"}).status_code == status
    assert client.post("/apps/shop/settings/env/KEEP/unset/").status_code == status
    assert _env(cast.app) == {"KEEP": "1"}


def test_the_env_urls_take_only_post_and_a_login(client, cast):
    client.force_login(cast.owner)
    assert client.get("/apps/shop/settings/env/").status_code == 405
    assert client.get("/apps/shop/settings/env/A/unset/").status_code == 405
    assert client.post("/apps/shop/settings/env/a-b/unset/").status_code == 404  # no such name
    client.logout()
    resp = client.post("/apps/shop/settings/env/", {"key": "X", "value": "1"})
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")


# --- delete -----------------------------------------------------------------------------------


def test_the_confirmation_page_says_what_deleting_removes(client, cast, outside):
    client.force_login(cast.owner)
    html = client.get("/apps/shop/delete/").content.decode()
    assert "remove service shop_web" in html
    assert "remove Swarm secret koyra-shop-1 (A)" in html
    assert 'name="confirm"' in html
    assert App.objects.filter(name="shop").exists() and "shop_web" in outside.services


@pytest.mark.parametrize("typed", ["", "Shop", "shop ", " shop", "sho", "other", "shop\n"])
def test_anything_but_the_apps_exact_name_deletes_nothing(client, cast, outside, typed):
    client.force_login(cast.owner)
    resp = client.post("/apps/shop/delete/", {"confirm": typed})
    assert resp.status_code == 400
    assert App.objects.filter(name="shop").exists()
    assert outside.calls == []  # nothing was removed outside either


@pytest.mark.parametrize("who", ADMINS)
def test_an_admin_who_types_the_name_tears_the_app_down(client, cast, outside, who):
    other = AppFactory(name="other")
    DeployFactory(app=cast.app, status=Deploy.Status.LIVE, spec={})
    client.force_login(getattr(cast, who))
    resp = client.post("/apps/shop/delete/", {"confirm": "shop"})
    assert resp.status_code == 302 and resp["Location"] == "/apps/"
    assert not App.objects.filter(name="shop").exists()
    assert "shop_web" not in outside.services and "other_web" in outside.services
    assert [s["id"] for s in outside.secrets] == ["s3"]  # only the other app's is left
    assert outside.manifests["shop"] == {} and other.pk
    assert "shop was deleted" in client.get("/apps/").content.decode()


def test_when_the_engine_is_down_the_page_says_so_and_the_app_stays(client, cast, outside):
    outside.down = True
    client.force_login(cast.owner)
    assert "Cannot tear down shop" in client.get("/apps/shop/delete/").content.decode()
    resp = client.post("/apps/shop/delete/", {"confirm": "shop"})
    assert resp.status_code == 400 and "Cannot tear down shop" in resp.content.decode()
    assert App.objects.filter(name="shop").exists()


@pytest.mark.parametrize(("who", "status"), NOT_ADMINS)
def test_only_an_admin_may_delete_404_for_who_cannot_see_it(client, cast, outside, who, status):
    client.force_login(getattr(cast, who))
    assert client.get("/apps/shop/delete/").status_code == status
    assert client.post("/apps/shop/delete/", {"confirm": "shop"}).status_code == status
    assert App.objects.filter(name="shop").exists() and outside.calls == []


def test_an_unknown_app_is_404_and_deleting_needs_a_login(client, cast, outside):
    client.force_login(cast.superuser)
    assert client.get("/apps/nope/delete/").status_code == 404
    client.logout()
    resp = client.post("/apps/shop/delete/", {"confirm": "shop"})
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")
    assert App.objects.filter(name="shop").exists()
