"""Every value a user names is validated once (apps/validators.py), whole: fullmatch, str only.
The class of inputs that `re.match` with `$` let through, for every validator."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps import validators as v

GOOD = {
    v.validate_app_name: "shop-api",
    v.validate_branch: "release/v2",
    v.validate_domain: "shop.example.com",
    v.validate_commit: "a" * 40,
    v.validate_secret_key: "DATABASE_URL",
    v.validate_repo_url: "https://github.com/acme/shop.git",
}

# Each is applied to every good value above: appended, prepended or substituted.
SUFFIXES = {
    "trailing newline": "\n",
    "trailing CRLF": "\r\n",
    "trailing CR": "\r",
    "trailing NUL": "\x00",
    "trailing space": " ",
    "trailing tab": "\t",
    "trailing vertical tab": "\x0b",
    "trailing form feed": "\x0c",
    "trailing NEL": "\x85",
    "trailing line separator": "\u2028",
    "trailing zero-width space": "\u200b",
    "trailing non-breaking space": "\u00a0",
    "trailing escape sequence": "\x1b[31m",
    "trailing shell": ";id",
    "trailing backtick": "`",
}
PREFIXES = {
    "leading newline": "\n",
    "leading space": " ",
    "leading NUL": "\x00",
    "leading dash": "-",
    "leading BOM": "\ufeff",
}


def _cases():
    for fn, good in GOOD.items():
        for what, s in SUFFIXES.items():
            yield pytest.param(fn, good + s, id=f"{fn.__name__}-{what}")
        for what, s in PREFIXES.items():
            yield pytest.param(fn, s + good, id=f"{fn.__name__}-{what}")


@pytest.mark.parametrize(("validator", "value"), list(_cases()))
def test_a_value_with_anything_around_it_is_refused(validator, value):
    with pytest.raises(ValidationError):
        validator(value)


@pytest.mark.parametrize("validator", list(GOOD))
def test_the_good_value_itself_passes(validator, settings):
    settings.KOYRA_ALLOW_FILE_REPOS = True
    validator(GOOD[validator])  # the table's base values are valid: the cases above test edits


LOOKALIKES = [
    (v.validate_app_name, "sh\u043ep"),  # Cyrillic o
    (v.validate_app_name, "\uff53\uff48\uff4f\uff50"),  # fullwidth
    (v.validate_app_name, "shop\u0301"),  # combining accent
    (v.validate_domain, "sh\u043ep.example.com"),
    (v.validate_domain, "\u212aoyra.io"),  # KELVIN SIGN lowercases to k
    (v.validate_domain, "shop.example.com\u3002"),  # ideographic full stop
    (v.validate_domain, "xn--shop.example.com"),  # not a lookalike: allowed below
    (v.validate_branch, "m\u0430in"),
    (v.validate_branch, "main\u2215x"),  # division slash
    (v.validate_secret_key, "D\u0410TABASE_URL"),
    (v.validate_secret_key, "\uff24ATABASE"),
    (v.validate_commit, "a" * 39 + "\u0410"),
    (v.validate_commit, "\u0660" * 40),  # Arabic-Indic digits are \d, not hex
    (v.validate_repo_url, "https://g\u0456thub.com/acme/shop.git"),
]


@pytest.mark.parametrize(("validator", "value"), LOOKALIKES, ids=lambda x: repr(x)[:30])
def test_unicode_lookalikes_are_refused(validator, value):
    if value.startswith("xn--"):
        validator(value)  # punycode is how IDNs are written: plain ASCII, accepted
        return
    with pytest.raises(ValidationError):
        validator(value)


OVER_LENGTH = [
    (v.validate_app_name, "a" * 40),
    (v.validate_branch, "b" * 201),
    (v.validate_domain, ("a" * 60 + ".") * 5 + "com"),
    (v.validate_domain, "a" * 64 + ".com"),
    (v.validate_secret_key, "K" * 129),
    (v.validate_commit, "a" * 41),
    (v.validate_commit, "a" * 40 + "\n"),
]


@pytest.mark.parametrize(("validator", "value"), OVER_LENGTH, ids=lambda x: repr(x)[:30])
def test_over_long_values_are_refused_and_quoted_truncated(validator, value):
    with pytest.raises(ValidationError) as exc:
        validator(value)
    assert len(exc.value.messages[0]) < 300


@pytest.mark.parametrize("value", [None, 5, ["shop"], {"a": 1}, b"shop", True])
@pytest.mark.parametrize("validator", list(GOOD), ids=lambda f: f.__name__)
def test_values_that_are_not_strings_are_refused_not_crashed_on(validator, value):
    with pytest.raises(ValidationError):
        validator(value)


@pytest.mark.parametrize(
    "value",
    [
        "shop.io",
        ["shop.io", "shop.io"],
        ["Host(`x`) || Host(`y`)"],
        ["a`.io"],
        [""],
        [None],
        [["shop.io"]],
        {"shop.io": True},
        ["shop.io\n"],
        ["shop.io"] * 101,
        [f"s{i}.io" for i in range(101)],
    ],
    ids=lambda x: repr(x)[:30],
)
def test_an_apps_domains_must_be_a_list_of_distinct_host_names(value):
    with pytest.raises(ValidationError):
        v.validate_domain_list(value)


def test_a_good_domain_list_passes():
    v.validate_domain_list(["shop.example.com", "www.shop.example.com"])
    v.validate_domain_list([])


@pytest.mark.parametrize(
    ("raw", "cursor"),
    [
        ("42", 42),
        ("0", 0),
        (None, 0),
        ("", 0),
        ("²", 0),
        ("٤٢", 0),  # Arabic-Indic digits: isdigit() but not a cursor
        ("9" * 5000, 0),
        ("9" * 19, 0),  # beyond a 64-bit column
        ("-1", 0),
        ("42\n", 0),
        (" 42", 0),
        ("4_2", 0),
        ("0x10", 0),
    ],
)
def test_a_log_cursor_is_ascii_digits_or_the_start(raw, cursor):
    assert v.log_cursor(raw) == cursor


@pytest.mark.parametrize(
    "value",
    ["a\x00b", "bad \ufffd bytes", "lone surrogate \udcff", "x" * (64 * 1024 + 1)],
    ids=["NUL", "U+FFFD", "surrogate", "over 64 KiB"],
)
def test_a_secret_value_that_an_env_var_cannot_hold_exactly_is_refused(value):
    with pytest.raises(ValidationError) as exc:
        v.validate_secret_value("KEY", value)
    assert value not in str(exc.value)


def test_secret_values_keep_every_byte_of_real_text():
    v.validate_secret_value("PEM", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n\n")
    v.validate_secret_value("UNICODE", "pässwörd ✓ 🔑\t")


def test_quote_cuts_a_huge_value_without_building_its_repr():
    q = v.quote("x" * 10_000_000)
    assert len(q) <= v.QUOTE_MAX and q.endswith("...")
    assert v.quote({"a": 1}) == "a dict"
