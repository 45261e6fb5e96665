from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.db import connection

from secrets_vault import crypto, services
from secrets_vault.models import Secret
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

VALUE = "sk_live_9f8e7d6c5b4a-plain"


def _raw_rows(table: str) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")
        return cur.fetchall()


def test_secret_set_stores_only_a_token(keys):
    app = AppFactory()
    secret = services.secret_set(app=app, key="STRIPE_KEY", value=VALUE)
    assert crypto.decrypt(secret.token) == VALUE
    rows = _raw_rows(Secret._meta.db_table)
    assert len(rows) == 1
    assert not any(VALUE in str(col) for col in rows[0])
    assert services.secret_values(app=app) == {"STRIPE_KEY": VALUE}


def test_secret_set_replaces_the_value_in_place(keys):
    app = AppFactory()
    services.secret_set(app=app, key="STRIPE_KEY", value="one")
    services.secret_set(app=app, key="STRIPE_KEY", value="two")
    assert Secret.objects.filter(app=app).count() == 1
    assert services.secret_values(app=app) == {"STRIPE_KEY": "two"}


def test_an_empty_value_is_refused(keys):
    app = AppFactory()
    with pytest.raises(ValidationError, match="STRIPE_KEY is empty"):
        services.secret_set(app=app, key="STRIPE_KEY", value="")
    assert not Secret.objects.exists()


@pytest.mark.parametrize("key", ["1ABC", "A-B", "A B", "", "A;rm"])
def test_a_bad_secret_name_is_refused(keys, key):
    with pytest.raises(ValidationError, match="not a valid environment variable name"):
        services.secret_set(app=AppFactory(), key=key, value=VALUE)


def test_missing_secrets_are_named_with_how_to_set_them(keys):
    app = AppFactory(name="shop")
    services.secret_set(app=app, key="DATABASE_URL", value=VALUE)
    with pytest.raises(ValidationError) as exc:
        services.secret_values(app=app, keys=["DATABASE_URL", "STRIPE_KEY", "API_TOKEN"])
    message = " ".join(exc.value.messages)
    assert "API_TOKEN, STRIPE_KEY" in message
    assert "DATABASE_URL" not in message
    assert "python manage.py set_secret shop KEY" in message
    assert VALUE not in message


def test_secret_values_returns_only_the_keys_asked_for(keys):
    app = AppFactory()
    services.secret_set(app=app, key="A", value="1")
    services.secret_set(app=app, key="B", value="2")
    services.secret_set(app=AppFactory(), key="A", value="other app")
    assert services.secret_values(app=app, keys=["A"]) == {"A": "1"}
    assert services.secret_values(app=app, keys=[]) == {}
    assert services.secret_values(app=app) == {"A": "1", "B": "2"}


def test_a_secret_under_a_foreign_key_fails_closed_naming_it(keys):
    app = AppFactory(name="shop")
    foreign = Fernet(Fernet.generate_key()).encrypt(VALUE.encode()).decode()
    Secret.objects.create(app=app, key="STRIPE_KEY", token=foreign)
    with pytest.raises(crypto.VaultError) as exc:
        services.secret_values(app=app, keys=["STRIPE_KEY"])
    message = str(exc.value)
    assert "STRIPE_KEY" in message and "shop" in message and "KOYRA_FERNET_KEYS" in message
    assert VALUE not in message and foreign not in message
