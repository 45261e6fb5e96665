"""An app's plain env vars (SPEC §6 `set_env`/`unset_env`): validated once
(apps.validators), set and unset all or nothing (apps.services), never under a secret's name;
the commands are thin over the services."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from apps import services, validators
from apps.models import App
from deployments.models import Deploy
from secrets_vault import services as vault
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db


def _call(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _env(app: App) -> dict[str, str]:
    app.refresh_from_db()
    return app.env


# --- validation: the class of names and values ----------------------------------------------


@pytest.mark.parametrize("key", ["A", "_", "LOG_LEVEL", "x1", "NEXT_PUBLIC_API", "a" * 128])
def test_environment_variable_names_are_valid(key):
    validators.validate_env_key(key)


@pytest.mark.parametrize(
    "key",
    ["", "1A", "A-B", "A B", "A=B", "A\n", "\nA", "A\x00", "Ä", "a" * 129, "$(id)", None, 7],
)
def test_anything_else_is_not_a_variable_name(key):
    with pytest.raises(ValidationError, match="not a valid environment variable name"):
        validators.validate_env_key(key)


@pytest.mark.parametrize(
    "value",
    ["", "info", "a b", "line1\nline2", "tab\there", "ünïcødé ✓", "=", "$(id)", "x" * 32768],
)
def test_text_up_to_the_bound_is_a_valid_value(value):
    validators.validate_env_value("K", value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\x00b", r"control character \\+x00"),
        ("a\rb", r"control character \\+x0d"),
        ("\x1b[31m", r"control character \\+x1b"),
        ("a\x7f", r"control character \\+x7f"),
        ("x" * 32769, "over 32 KiB"),
        ("é" * 16385, "over 32 KiB"),  # bytes, not characters
        ("bad \ufffd bytes", "not valid UTF-8"),
        ("lone \ud800", "not valid UTF-8"),
        (7, "must be text"),
        (None, "must be text"),
    ],
)
def test_a_value_an_environment_cannot_hold_exactly_is_refused(value, message):
    with pytest.raises(ValidationError, match=message):
        validators.validate_env_value("K", value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "must be a mapping"),
        ("A=1", "must be a mapping"),
        ({f"K{i}": "v" for i in range(101)}, "At most 100"),
        ({"A-B": "v"}, "not a valid environment variable name"),
        ({"A": 1}, "must be text"),
    ],
)
def test_the_stored_env_is_a_bounded_mapping_of_valid_pairs(value, message):
    with pytest.raises(ValidationError, match=message):
        validators.validate_env(value)


def test_the_model_validates_env_like_every_other_writer():
    app = AppFactory.build(env={"A": "a\x00"})  # unsaved: PostgreSQL refuses NUL in JSON
    with pytest.raises(ValidationError, match="control character"):
        app.full_clean(exclude=["webhook_secret_token"])


# --- services ---------------------------------------------------------------------------------


def test_set_adds_and_replaces_and_unset_removes():
    app = AppFactory()
    services.app_env_set(app=app, values={"LOG_LEVEL": "debug", "EMPTY": ""})
    services.app_env_set(app=app, values={"LOG_LEVEL": "info", "B": "two\nlines"})
    assert _env(app) == {"LOG_LEVEL": "info", "EMPTY": "", "B": "two\nlines"}
    services.app_env_unset(app=app, keys=["EMPTY", "B"])
    assert _env(app) == {"LOG_LEVEL": "info"}


def test_one_bad_pair_sets_none_of_them():
    app = AppFactory(env={"KEEP": "1"})
    with pytest.raises(ValidationError, match="control character"):
        services.app_env_set(app=app, values={"GOOD": "ok", "BAD": "a\x00"})
    with pytest.raises(ValidationError, match="not a valid environment variable name"):
        services.app_env_set(app=app, values={"GOOD": "ok", "1BAD": "x"})
    with pytest.raises(ValidationError, match="Nothing to set"):
        services.app_env_set(app=app, values={})
    assert _env(app) == {"KEEP": "1"}


def test_the_number_of_variables_is_bounded_across_calls():
    app = AppFactory()
    services.app_env_set(app=app, values={f"K{i}": "v" for i in range(100)})
    with pytest.raises(ValidationError, match="At most 100"):
        services.app_env_set(app=app, values={"ONE_MORE": "v"})
    assert len(_env(app)) == 100


def test_unset_of_a_name_that_is_not_set_removes_nothing_and_says_which_are():
    app = AppFactory(env={"A": "1", "B": "2"})
    with pytest.raises(ValidationError, match=r"NOPE is not an env var of .*its env vars: A, B"):
        services.app_env_unset(app=app, keys=["A", "NOPE"])
    with pytest.raises(ValidationError, match="Nothing to unset"):
        services.app_env_unset(app=app, keys=[])
    assert _env(app) == {"A": "1", "B": "2"}


def test_a_stored_secrets_name_cannot_be_a_plain_env_var():
    app = AppFactory(name="shop")
    vault.secret_set(app=app, key="DATABASE_URL", value="postgres://u:p@db/x")
    with pytest.raises(ValidationError, match="DATABASE_URL is a secret of shop"):
        services.app_env_set(app=app, values={"LOG": "1", "DATABASE_URL": "sqlite://"})
    assert _env(app) == {}


def test_a_secret_the_live_release_needs_cannot_be_a_plain_env_var_even_unset():
    app = AppFactory(name="shop")
    DeployFactory(app=app, status=Deploy.Status.LIVE, spec={"secrets": ["STRIPE_KEY"]})
    with pytest.raises(ValidationError, match="STRIPE_KEY is a secret of shop"):
        services.app_env_set(app=app, values={"STRIPE_KEY": "sk_x"})
    services.app_env_set(app=app, values={"STRIPE_MODE": "test"})  # another name is fine
    assert _env(app) == {"STRIPE_MODE": "test"}


# --- commands ---------------------------------------------------------------------------------


def test_set_env_and_unset_env_say_what_changed_and_how_to_apply_it():
    app = AppFactory(name="shop")
    out = _call("set_env", "shop", "LOG_LEVEL=debug", "URL=https://x.example/?a=b=c", "EMPTY=")
    assert "set LOG_LEVEL" in out and "redeploy shop" in out
    assert _env(app) == {"LOG_LEVEL": "debug", "URL": "https://x.example/?a=b=c", "EMPTY": ""}
    out = _call("unset_env", "shop", "EMPTY", "URL")
    assert "unset EMPTY" in out and "env vars of shop: LOG_LEVEL" in out
    assert _env(app) == {"LOG_LEVEL": "debug"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set_env", "nope", "A=1"], "No app named 'nope'"),
        (["set_env", "Shop\n", "A=1"], "No app named"),
        (["set_env", "shop", "A=1", "JUSTKEY"], "'JUSTKEY' is not KEY=VALUE"),
        (["set_env", "shop", "A=1", "A=2"], "'A' is given twice"),
        (["set_env", "shop", "=v"], "not a valid environment variable name"),
        (["set_env", "shop", "A B=1"], "not a valid environment variable name"),
        (["set_env", "shop", "A=\x1b"], "control character"),
        (["set_env", "shop", "SECRET=x"], "SECRET is a secret of shop"),
        (["unset_env", "shop", "NOPE"], "NOPE is not an env var of shop"),
        (["unset_env", "shop", "KEEP", "1X"], "not a valid environment variable name"),
    ],
)
def test_the_commands_refuse_with_a_clear_message_and_change_nothing(args, message):
    app = AppFactory(name="shop", env={"KEEP": "1"})
    vault.secret_set(app=app, key="SECRET", value="s3cr3t")
    with pytest.raises(CommandError, match=message):
        _call(*args)
    assert _env(app) == {"KEEP": "1"}


def test_the_commands_need_at_least_one_variable():
    AppFactory(name="shop")
    for command in ("set_env", "unset_env"):
        with pytest.raises(CommandError, match="arguments are required"):
            _call(command, "shop")
