"""`list_deploys` (SPEC §6) shows each commit's subject and author: untrusted repository text,
printed without a control character (an escape sequence must not reach the terminal)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("list_deploys", *args, stdout=out)
    return out.getvalue()


def test_the_subject_and_author_are_listed_and_the_terminal_gets_no_escape_sequence():
    app = AppFactory(name="shop")
    DeployFactory(
        app=app,
        commit="a" * 40,
        commit_message="Fix \x1b[2J\x1b]0;owned\x07 the <b>cart</b>\r\n\nthe body stays out",
        commit_author="Ada <ada@example.com>",
    )
    (row,) = json.loads(_run("shop", "--json"))
    assert row["message"] == "Fix \x1b[2J\x1b]0;owned\x07 the <b>cart</b>\r"
    assert row["author"] == "Ada <ada@example.com>"
    table = _run("shop")
    assert "\x1b" not in table and "\x07" not in table and "\r" not in table
    assert "Fix \ufffd[2J\ufffd]0;owned\ufffd the <b>cart</b>\ufffd" in table
    assert "the body" not in table


def test_a_long_subject_is_cut_and_a_deploy_without_one_prints_none():
    app = AppFactory(name="shop")
    DeployFactory(app=app, commit="b" * 40, commit_message="x" * 500)
    DeployFactory(app=app, commit="c" * 40, commit_message="")
    lines = _run("shop").splitlines()
    assert len(lines) == 2 and all(len(line) < 400 for line in lines)
    assert any(line.endswith("x" * 71 + "\u2026") for line in lines)
    assert [r["message"] for r in json.loads(_run("shop", "--json"))] == ["", "x" * 500]
