from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from apps import services as app_services
from apps.models import App
from secrets_vault import crypto, services
from secrets_vault.models import Secret
from tests.secrets_vault.conftest import new_key

pytestmark = pytest.mark.django_db

VALUES = {
    ("shop", "DATABASE_URL"): "postgres://shop:pw-one@db/shop",
    ("shop", "STRIPE_KEY"): "sk_live_two_2222",
    ("blog", "API_TOKEN"): "tok-three-3333",
}


@pytest.fixture
def vault(settings, old_key):
    """Two apps with secrets and webhook secrets, all made under `old_key`."""
    settings.KOYRA_FERNET_KEYS = [old_key]
    hooks = {}
    for name in ("shop", "blog"):
        _app, hooks[name] = app_services.app_create(
            name=name, repo_url=f"https://github.com/acme/{name}.git"
        )
    for (name, key), value in VALUES.items():
        services.secret_set(app=App.objects.get(name=name), key=key, value=value)
    return hooks


def _rotate() -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("rotate_keys", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _assert_all_decrypt(hooks: dict[str, str]) -> None:
    for secret in Secret.objects.select_related("app"):
        assert crypto.decrypt(secret.token) == VALUES[(secret.app.name, secret.key)]
    for app in App.objects.all():
        assert app_services.app_webhook_secret(app=app) == hooks[app.name]


def _assert_nothing_secret_in(text: str, hooks: dict[str, str]) -> None:
    tokens = [s.token for s in Secret.objects.all()]
    tokens += [a.webhook_secret_token for a in App.objects.all()]
    for value in [*VALUES.values(), *hooks.values(), *tokens]:
        assert value not in text


def test_after_rotation_the_old_key_can_be_dropped(settings, vault, old_key):
    new = new_key()
    settings.KOYRA_FERNET_KEYS = [new, old_key]
    out, err = _rotate()
    assert "3 secret(s), 2 webhook secret(s), 0 repository credential(s)" in out
    assert err == ""
    _assert_nothing_secret_in(out, vault)
    settings.KOYRA_FERNET_KEYS = [new]
    _assert_all_decrypt(vault)


def test_without_rotation_dropping_the_old_key_loses_access(settings, vault):
    settings.KOYRA_FERNET_KEYS = [new_key()]
    with pytest.raises(crypto.VaultError):
        services.secret_values(app=App.objects.get(name="shop"))


def test_an_interrupted_run_leaves_everything_readable_and_a_rerun_finishes(
    settings, vault, old_key, monkeypatch
):
    new = new_key()
    settings.KOYRA_FERNET_KEYS = [new, old_key]
    real_rotate, calls = crypto.rotate, []

    def dies_on_the_third_row(token: str) -> str:
        calls.append(token)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the operator's ^C, halfway through
        return real_rotate(token)

    monkeypatch.setattr(crypto, "rotate", dies_on_the_third_row)
    with pytest.raises(KeyboardInterrupt):
        _rotate()
    monkeypatch.setattr(crypto, "rotate", real_rotate)

    # Halfway: every row still opens with the configured keys, two of them with the new one.
    _assert_all_decrypt(vault)
    settings.KOYRA_FERNET_KEYS = [new]
    opens = 0
    for secret in Secret.objects.all():
        try:
            crypto.decrypt(secret.token)
            opens += 1
        except crypto.VaultError:
            pass
    assert opens == 2

    settings.KOYRA_FERNET_KEYS = [new, old_key]
    out, _ = _rotate()
    assert "3 secret(s), 2 webhook secret(s), 0 repository credential(s)" in out
    settings.KOYRA_FERNET_KEYS = [new]
    _assert_all_decrypt(vault)


def test_running_it_twice_is_harmless(settings, vault, old_key):
    new = new_key()
    settings.KOYRA_FERNET_KEYS = [new, old_key]
    _rotate()
    _rotate()
    settings.KOYRA_FERNET_KEYS = [new]
    _assert_all_decrypt(vault)


def test_a_row_no_key_opens_is_reported_kept_and_the_rest_rotated(settings, vault, old_key):
    foreign = Fernet(Fernet.generate_key()).encrypt(b"lost-value-4444").decode()
    Secret.objects.create(app=App.objects.get(name="blog"), key="ORPHAN", token=foreign)
    new = new_key()
    settings.KOYRA_FERNET_KEYS = [new, old_key]
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 value") as exc:
        call_command("rotate_keys", stdout=out, stderr=err)
    assert exc.value.returncode == 1  # manage.py exits non-zero
    assert "blog: secret ORPHAN" in err.getvalue()
    assert "3 secret(s), 2 webhook secret(s), 0 repository credential(s)" in out.getvalue()
    text = out.getvalue() + err.getvalue() + str(exc.value)
    assert "lost-value-4444" not in text and foreign not in text
    _assert_nothing_secret_in(text, vault)
    assert Secret.objects.get(key="ORPHAN").token == foreign  # nothing lost or overwritten
    Secret.objects.filter(key="ORPHAN").delete()
    settings.KOYRA_FERNET_KEYS = [new]
    _assert_all_decrypt(vault)


def test_a_broken_webhook_token_is_reported_by_app(settings, vault, old_key):
    App.objects.filter(name="shop").update(webhook_secret_token="garbage")
    settings.KOYRA_FERNET_KEYS = [new_key(), old_key]
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("rotate_keys", stdout=StringIO(), stderr=err)
    assert "shop: webhook secret" in err.getvalue()
    assert App.objects.get(name="shop").webhook_secret_token == "garbage"


def test_a_value_set_during_rotation_is_not_undone(settings, vault, old_key, monkeypatch):
    new = new_key()
    settings.KOYRA_FERNET_KEYS = [new, old_key]
    shop = App.objects.get(name="shop")
    target = Secret.objects.get(app=shop, key="STRIPE_KEY").token
    real_rotate = crypto.rotate

    def set_meanwhile(token: str) -> str:
        rotated = real_rotate(token)
        if token == target:  # set_secret lands between the read and the write
            services.secret_set(app=shop, key="STRIPE_KEY", value="sk_live_new_5555")
        return rotated

    monkeypatch.setattr(crypto, "rotate", set_meanwhile)
    _rotate()
    settings.KOYRA_FERNET_KEYS = [new]
    assert services.secret_values(app=shop)["STRIPE_KEY"] == "sk_live_new_5555"


def test_no_key_configured_is_a_clear_error(settings, vault):
    settings.KOYRA_FERNET_KEYS = []
    with pytest.raises(CommandError, match="KOYRA_FERNET_KEYS"):
        _rotate()
