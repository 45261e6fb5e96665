from __future__ import annotations

import pytest
from django.urls import reverse

from apps import services as app_services
from secrets_vault import services
from secrets_vault.models import Secret

pytestmark = pytest.mark.django_db

VALUE = "sk_live_admin_must_not_show_7777"


@pytest.fixture
def stored(keys):
    app, hook = app_services.app_create(name="shop", repo_url="https://github.com/acme/shop.git")
    secret = services.secret_set(app=app, key="STRIPE_KEY", value=VALUE)
    return app, hook, secret


def _pages(admin_client, names: list[tuple[str, tuple]]) -> str:
    body = ""
    for name, args in names:
        res = admin_client.get(reverse(name, args=args))
        assert res.status_code == 200, name
        body += res.content.decode()
    return body


def test_the_secret_admin_never_shows_the_value_or_the_token(admin_client, stored):
    _app, _hook, secret = stored
    body = _pages(
        admin_client,
        [
            ("admin:secrets_vault_secret_changelist", ()),
            ("admin:secrets_vault_secret_change", (secret.pk,)),
            ("admin:secrets_vault_secret_history", (secret.pk,)),
            ("admin:secrets_vault_secret_delete", (secret.pk,)),
        ],
    )
    assert "STRIPE_KEY" in body  # the page did render the secret's row
    assert VALUE not in body
    assert secret.token not in body
    assert secret.token[:24] not in body


def test_the_secret_admin_cannot_edit_or_add(admin_client, stored):
    _app, _hook, secret = stored
    res = admin_client.post(
        reverse("admin:secrets_vault_secret_change", args=(secret.pk,)),
        {"app": secret.app_id, "key": "STRIPE_KEY", "token": "overwritten"},
    )
    assert res.status_code == 403
    assert admin_client.get(reverse("admin:secrets_vault_secret_add")).status_code == 403
    assert Secret.objects.get(pk=secret.pk).token == secret.token


def test_the_app_admin_never_shows_the_webhook_secret(admin_client, stored):
    app, hook, _secret = stored
    body = _pages(
        admin_client,
        [
            ("admin:apps_app_changelist", ()),
            ("admin:apps_app_change", (app.pk,)),
            ("admin:apps_app_history", (app.pk,)),
        ],
    )
    assert "shop" in body
    assert hook not in body
    assert app.webhook_secret_token not in body
    assert app.webhook_secret_token[:24] not in body
    assert VALUE not in body
