from __future__ import annotations

import re

import pytest

from deployments.models import Deploy
from secrets_vault import crypto
from secrets_vault.models import Secret
from secrets_vault.services import secret_set
from tests import base
from tests.factories import DeployFactory

pytestmark = pytest.mark.django_db
cast = base.cast  # the fixed cast (tests/base.py) as this module's fixture

VALUE = "postgres://shop:s3cr3t-pa55@db:5432/shop"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _login_redirect(resp) -> bool:
    return resp.status_code == 302 and resp["Location"].startswith("/accounts/login/?next=")


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "who,status",
    [
        ("owner", 200),
        ("member", 200),
        ("superuser", 200),
        ("viewer", 403),  # the names of the secrets are for those who may set them
        ("staff", 404),  # is_staff alone gives nothing on apps (issue 11)
        ("outsider", 404),
    ],
)
def test_secrets_page_access(client, cast, who, status):
    client.force_login(getattr(cast, who))
    assert client.get("/apps/shop/secrets/").status_code == status


# Who may set or delete a secret: deployers and up.
CHANGING_SECRETS = [
    ("owner", 302),
    ("admin", 302),
    ("member", 302),
    ("superuser", 302),
    ("viewer", 403),  # sees the app, may not touch its secrets
    ("staff", 404),
    ("outsider", 404),
]


@pytest.mark.parametrize("who,status", CHANGING_SECRETS)
def test_setting_a_secret_access(client, cast, who, status):
    client.force_login(getattr(cast, who))
    resp = client.post("/apps/shop/secrets/", {"key": "API_KEY", "value": VALUE})
    assert resp.status_code == status
    assert Secret.objects.filter(app=cast.app, key="API_KEY").exists() == (status == 302)


@pytest.mark.parametrize("who,status", CHANGING_SECRETS)
def test_deleting_a_secret_access(client, cast, who, status):
    secret_set(app=cast.app, key="API_KEY", value=VALUE)
    client.force_login(getattr(cast, who))
    resp = client.post("/apps/shop/secrets/API_KEY/delete/")
    assert resp.status_code == status
    assert Secret.objects.filter(app=cast.app, key="API_KEY").exists() == (status != 302)


def test_secrets_views_need_a_login(client, cast):
    secret_set(app=cast.app, key="API_KEY", value=VALUE)
    assert _login_redirect(client.get("/apps/shop/secrets/"))
    assert _login_redirect(client.post("/apps/shop/secrets/", {"key": "X", "value": "y"}))
    assert _login_redirect(client.post("/apps/shop/secrets/API_KEY/delete/"))
    assert list(Secret.objects.values_list("key", flat=True)) == ["API_KEY"]


# --- delete asks first (issue 15) ----------------------------------------------------------


def test_delete_asks_first_naming_the_secret_and_deletes_only_on_post(client, cast):
    secret_set(app=cast.app, key="API_KEY", value=VALUE)
    client.force_login(cast.member)
    app_page = client.get("/apps/shop/").content.decode()
    assert '<form class="right" method="get" action="/apps/shop/secrets/API_KEY/delete/">' in (
        app_page
    )
    resp = client.get("/apps/shop/secrets/API_KEY/delete/")
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "Delete the secret API_KEY of shop? Its value cannot be shown or restored" in html
    assert '<form method="post" action="/apps/shop/secrets/API_KEY/delete/">' in html
    assert "Running containers keep the value until the next deploy" in html
    assert VALUE not in html
    assert Secret.objects.filter(key="API_KEY").exists()  # a GET changes nothing
    client.post("/apps/shop/secrets/API_KEY/delete/")
    assert not Secret.objects.exists()


def test_the_question_says_when_the_live_manifest_needs_the_secret(client, cast):
    DeployFactory(app=cast.app, status=Deploy.Status.LIVE, spec={"secrets": ["API_KEY"]})
    secret_set(app=cast.app, key="API_KEY", value=VALUE)
    client.force_login(cast.owner)
    html = client.get("/apps/shop/secrets/API_KEY/delete/").content.decode()
    assert "The app&#x27;s manifest lists it: the next deploy, redeploy or rollback" in (html)


def test_asking_to_delete_an_unknown_secret_says_so(client, cast):
    client.force_login(cast.owner)
    resp = client.get("/apps/shop/secrets/NOPE/delete/", follow=True)
    assert resp.redirect_chain == [("/apps/shop/#secrets", 302)]
    assert "shop has no secret named NOPE." in resp.content.decode()


@pytest.mark.parametrize(
    "who,status", [("member", 200), ("admin", 200), ("viewer", 403), ("outsider", 404)]
)
def test_the_delete_question_is_for_who_may_delete(client, cast, who, status):
    secret_set(app=cast.app, key="API_KEY", value=VALUE)
    client.force_login(getattr(cast, who))
    assert client.get("/apps/shop/secrets/API_KEY/delete/").status_code == status
    assert client.put("/apps/shop/secrets/API_KEY/delete/").status_code == 405
    assert Secret.objects.exists()


# --- write-only ------------------------------------------------------------------------------


def test_setting_a_secret_stores_only_its_token_and_never_shows_the_value(client, cast):
    client.force_login(cast.owner)
    resp = client.post("/apps/shop/secrets/", {"key": "DATABASE_URL", "value": VALUE}, follow=True)
    assert resp.redirect_chain == [("/apps/shop/#secrets", 302)]
    html = resp.content.decode()
    assert "DATABASE_URL set. Redeploy shop to apply it." in html
    assert "<code>DATABASE_URL</code>" in html
    secret = Secret.objects.get(app=cast.app, key="DATABASE_URL")
    assert VALUE not in secret.token and crypto.decrypt(secret.token) == VALUE
    assert VALUE not in html and secret.token not in html
    page = client.get("/apps/shop/secrets/").content.decode()
    assert VALUE not in page and secret.token not in page


def test_a_value_is_stored_exactly_as_typed(client, cast):
    client.force_login(cast.owner)
    client.post("/apps/shop/secrets/", {"key": "PADDED", "value": "  two words  "})
    assert crypto.decrypt(Secret.objects.get(key="PADDED").token) == "  two words  "


def test_setting_an_existing_name_replaces_the_value(client, cast):
    secret_set(app=cast.app, key="API_KEY", value="old-value-1")
    client.force_login(cast.member)
    client.post("/apps/shop/secrets/", {"key": "API_KEY", "value": "new-value-2"})
    assert crypto.decrypt(Secret.objects.get(key="API_KEY").token) == "new-value-2"
    assert Secret.objects.count() == 1


@pytest.mark.parametrize(
    "data,message",
    [
        ({"key": "1BAD", "value": VALUE}, "is not a valid environment variable name"),
        ({"key": "BAD-NAME", "value": VALUE}, "is not a valid environment variable name"),
        ({"key": "EMPTY", "value": ""}, "This field is required."),
        ({"key": "", "value": VALUE}, "This field is required."),
    ],
)
def test_a_refused_form_says_why_and_never_echoes_the_value(client, cast, data, message):
    client.force_login(cast.owner)
    resp = client.post("/apps/shop/secrets/", data)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert message in html
    assert VALUE not in html
    assert 'type="password"' in html and 'name="value"' in html
    assert not Secret.objects.exists()


def test_the_value_input_never_has_an_initial_value(client, cast):
    secret_set(app=cast.app, key="API_KEY", value=VALUE)
    client.force_login(cast.owner)
    for url in ("/apps/shop/", "/apps/shop/secrets/"):
        html = client.get(url).content.decode()
        tag = (
            html.split('name="value"')[0].rsplit("<input", 1)[1]
            + html.split('name="value"')[1].split(">")[0]
        )
        assert "value=" not in tag, tag
        assert VALUE not in html


def test_deleting_a_secret(client, cast):
    secret_set(app=cast.app, key="API_KEY", value=VALUE)
    secret_set(app=cast.app, key="OTHER", value="x")
    client.force_login(cast.owner)
    resp = client.post("/apps/shop/secrets/API_KEY/delete/", follow=True)
    assert "API_KEY deleted. Redeploy shop to apply it." in resp.content.decode()
    assert list(Secret.objects.values_list("key", flat=True)) == ["OTHER"]


def test_deleting_an_unknown_secret_says_so(client, cast):
    client.force_login(cast.owner)
    resp = client.post("/apps/shop/secrets/NOPE/delete/", follow=True)
    assert "shop has no secret named NOPE." in resp.content.decode()


def test_secrets_of_another_app_are_not_touched(client, cast):
    from tests.factories import AppFactory

    other = AppFactory(name="other", owner=cast.owner)
    secret_set(app=other, key="API_KEY", value=VALUE)
    client.force_login(cast.owner)
    client.post("/apps/shop/secrets/API_KEY/delete/")
    assert Secret.objects.filter(app=other).count() == 1


@pytest.mark.parametrize("path", ["/apps/shop/", "/apps/shop/secrets/"])
def test_the_panel_lists_what_the_manifest_needs_set_or_missing_then_the_rest(client, cast, path):
    """Before anything is live: the first deploy failed for a missing secret, and the page says
    which one is missing, which is set, and which no manifest lists (issue 15)."""
    DeployFactory(
        app=cast.app, status=Deploy.Status.FAILED, manifest_secrets=["DATABASE_URL", "API_KEY"]
    )
    secret_set(app=cast.app, key="API_KEY", value=VALUE)
    secret_set(app=cast.app, key="EXTRA", value="other-value-123")
    client.force_login(cast.owner)
    html = client.get(path).content.decode()
    rows = re.findall(
        r'<li class="row secret( missing)?" data-secret="(\w+)">(.*?)</li>', html, re.S
    )
    assert [(key, bool(missing)) for missing, key, _ in rows] == [
        ("DATABASE_URL", True),
        ("API_KEY", False),
        ("EXTRA", False),
    ]
    body = {key: text for _, key, text in rows}
    assert "missing: the manifest needs it" in body["DATABASE_URL"]
    assert "delete" not in body["DATABASE_URL"]  # nothing stored to delete
    assert "set " in body["API_KEY"] and "no manifest lists it" not in body["API_KEY"]
    assert "no manifest lists it" in body["EXTRA"]
    assert VALUE not in html and "other-value-123" not in html
