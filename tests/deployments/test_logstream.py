from __future__ import annotations

import pytest

from deployments import logstream
from deployments.boundaries import engine
from deployments.models import LogLine
from tests.factories import DeployFactory

SECRET = "sk_live_0123456789abcdef"
OTHER = "hunter2-db-password"


def test_the_redactor_replaces_every_value_everywhere():
    redact = logstream.Redactor([SECRET, OTHER])
    line = f"a={SECRET} b={OTHER} again {SECRET}{SECRET}"
    assert redact(line) == "a=**** b=**** again ********"


def test_the_longest_value_wins_when_one_contains_another():
    redact = logstream.Redactor(["abc", "abcdef-longer"])
    assert redact("x abcdef-longer y abc") == "x **** y ****"


def test_empty_values_are_ignored_and_no_values_change_nothing():
    assert logstream.Redactor(["", SECRET])("plain text") == "plain text"
    assert logstream.Redactor()("plain text") == "plain text"


def test_each_line_of_a_multiline_value_is_redacted():
    pem = (
        "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n"
        "AQEFAASCBKcwggSjAgEAAoIB\n-----END KEY-----\n"
    )
    redact = logstream.Redactor([pem])
    for line in pem.splitlines():
        assert redact(f"leak: {line}") == "leak: ****"


def test_a_value_with_blanks_around_it_is_redacted_after_stripping():
    redact = logstream.Redactor([f"  {SECRET} \n"])
    assert redact(f"token={SECRET}") == "token=****"


@pytest.mark.django_db
def test_deploy_log_stores_and_relays_only_redacted_lines(monkeypatch):
    sent = []
    monkeypatch.setattr(logstream, "_send", lambda deploy_id, message: sent.append(message))
    deploy = DeployFactory()
    log = logstream.DeployLog(deploy, logstream.Redactor([SECRET]))
    log(f"one {SECRET}\ntwo\n{SECRET} three")
    log.line("four")
    stored = list(LogLine.objects.filter(deploy=deploy).values_list("seq", "text"))
    assert stored == [(1, "one ****"), (2, "two"), (3, "**** three"), (4, "four")]
    assert [m["text"] for m in sent] == [text for _, text in stored]
    assert SECRET not in deploy.log_text


@pytest.mark.django_db
def test_a_new_deploy_log_continues_the_numbering():
    deploy = DeployFactory()
    logstream.DeployLog(deploy)("one\ntwo")
    log = logstream.DeployLog(deploy, logstream.Redactor([SECRET]))
    log(SECRET)
    assert list(deploy.log_lines.values_list("seq", "text")) == [
        (1, "one"),
        (2, "two"),
        (3, "****"),
    ]


@pytest.mark.parametrize("cut", [1, 5, len(SECRET) - 1])
def test_a_value_split_across_chunks_is_still_redacted(cut):
    lines: list[str] = []
    out = engine._LineBuffer(lambda text: lines.append(logstream.Redactor([SECRET])(text)))
    chunks = [f"step 1\ntoken={SECRET[:cut]}", SECRET[cut:], " done\nlast "]
    for chunk in chunks:
        out.feed(chunk)
    assert lines == ["step 1", "token=**** done"]
    out.flush()
    assert lines == ["step 1", "token=**** done", "last"]


def test_a_value_arriving_one_character_at_a_time_is_redacted():
    lines: list[str] = []
    out = engine._LineBuffer(lambda text: lines.append(logstream.Redactor([SECRET])(text)))
    for ch in f"echo token={SECRET}\n":
        out.feed(ch)
    out.flush()
    assert lines == ["echo token=****"]


@pytest.mark.django_db
def test_line_buffer_into_deploy_log_stores_no_split_value(monkeypatch):
    monkeypatch.setattr(logstream, "_send", lambda deploy_id, message: None)
    deploy = DeployFactory()
    out = engine._LineBuffer(logstream.DeployLog(deploy, logstream.Redactor([SECRET, OTHER])))
    for chunk in [f"release: {SECRET[:7]}", f"{SECRET[7:]} and {OTHER[:3]}", f"{OTHER[3:]}\n"]:
        out.feed(chunk)
    out.flush()
    assert deploy.log_text == "release: **** and ****"
