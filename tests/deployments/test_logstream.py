from __future__ import annotations

from types import SimpleNamespace

import pytest

from deployments import logstream
from deployments.boundaries import engine
from deployments.models import Deploy, LogLine
from deployments.transitions import transition
from tests.factories import DeployFactory

Status = Deploy.Status

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
    assert [(s, x) for m in sent for s, x in enumerate(m["texts"], m["first"])] == stored
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


@pytest.fixture
def relayed(monkeypatch):
    sent: list[list[tuple[int, str]]] = []

    def _send(deploy_id, message):
        if message["type"] == "log.lines":
            sent.append(list(enumerate(message["texts"], message["first"])))
        else:
            sent.append([(0, message["status"])])

    monkeypatch.setattr(logstream, "_send", _send)
    return sent


@pytest.fixture
def clock(monkeypatch):
    """logstream's monotonic clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(logstream, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def _stored(deploy) -> list[tuple[int, str]]:
    return list(deploy.log_lines.order_by("seq").values_list("seq", "text"))


@pytest.mark.django_db
def test_outside_a_batch_every_line_is_stored_and_relayed_at_once(relayed, clock):
    deploy = DeployFactory()
    log = logstream.DeployLog(deploy)
    for text in ("one", "two", "three"):
        log(text)
    assert relayed == [[(1, "one")], [(2, "two")], [(3, "three")]]
    assert _stored(deploy) == [(1, "one"), (2, "two"), (3, "three")]


@pytest.mark.django_db
def test_a_burst_inside_a_batch_is_stored_and_relayed_together(relayed, clock):
    deploy = DeployFactory()
    log = logstream.DeployLog(deploy)
    with log.batched():
        log("first")  # after a quiet spell: at once
        assert relayed == [[(1, "first")]]
        for i in range(2, 6):
            log(f"line {i}")  # within BATCH_SECONDS of the last hand-over: held
        assert relayed == [[(1, "first")]] and _stored(deploy) == [(1, "first")]
        clock[0] += logstream.BATCH_SECONDS * 1.5
        log("line 6")  # the window is over: everything held goes, in one message
        assert relayed[1] == [(i, f"line {i}") for i in range(2, 7)]
        log("line 7")
    assert relayed[2] == [(7, "line 7")]  # the end of the batch hands on the rest
    assert _stored(deploy) == [(1, "first"), *((i, f"line {i}") for i in range(2, 8))]


@pytest.mark.django_db
def test_a_batch_goes_when_it_is_full_of_lines_or_of_characters(relayed, clock):
    deploy = DeployFactory()
    log = logstream.DeployLog(deploy)
    with log.batched():
        log("start")
        log("\n".join(f"n{i}" for i in range(logstream.BATCH_LINES)))
        assert len(relayed) == 2 and len(relayed[1]) == logstream.BATCH_LINES
        log("x" * 5000)
        assert len(relayed) == 2
        for _ in range(logstream.BATCH_CHARS // 5000):
            log("x" * 5000)
        assert len(relayed) == 3
        assert sum(len(t) for _, t in relayed[2]) >= logstream.BATCH_CHARS
    assert [s for batch in relayed for s, _ in batch] == list(range(1, log.seq + 1))


@pytest.mark.django_db
@pytest.mark.parametrize("extra", [0, 1, 2])
def test_a_batch_longer_than_one_statement_is_stored_whole_and_in_order(relayed, clock, extra):
    """A batch is stored by statements of as many rows as the database takes parameters for:
    the lines of every statement, the last one shorter, each exactly as it came (texts that
    look like the statement's own placeholders included)."""
    deploy = DeployFactory()
    log = logstream.DeployLog(deploy)
    tricky = ["%s", "%%s", "?", "%(x)s", "'); DROP TABLE x; --", "\\", "é 字 🙂", "'%s'"]
    count = 2 * logstream._rows_per_statement() + extra
    texts = [f"{i} {tricky[i % len(tricky)]}" for i in range(count)]
    with log.batched():
        log("start")
        log("\n".join(texts))  # held, then handed on as one batch
    assert _stored(deploy) == [(1, "start"), *enumerate(texts, 2)]
    assert [s for batch in relayed for s, _ in batch] == list(range(1, count + 2))


@pytest.mark.django_db
def test_a_status_change_hands_on_the_held_lines_first(relayed, clock):
    deploy = DeployFactory(status=Status.BUILDING)
    log = logstream.DeployLog(deploy)
    with log.batched():
        log("step 1")
        log("step 2")  # held
        assert transition(deploy, Status.FAILED, reason="boom", log=log, line="!! boom")
        assert relayed == [[(1, "step 1")], [(2, "step 2"), (3, "!! boom")], [(0, "failed")]]
    assert _stored(deploy) == [(1, "step 1"), (2, "step 2"), (3, "!! boom")]


@pytest.mark.django_db
def test_a_new_log_of_the_same_deploy_hands_on_what_the_earlier_one_holds(relayed, clock):
    deploy = DeployFactory()
    first = logstream.DeployLog(deploy)
    with first.batched():
        first("a")
        first("b")  # held when the run breaks off and a safety net writes
        second = logstream.DeployLog(deploy)
        second("c")
    assert _stored(deploy) == [(1, "a"), (2, "b"), (3, "c")]


def test_paced_reads_on_a_helper_thread_and_calls_on_quiet_here_while_nothing_comes():
    import threading
    import time

    gate = threading.Event()
    quiet_threads: list[str] = []

    def stream():
        yield "a"
        gate.wait(5)
        yield "b"

    def on_quiet():
        quiet_threads.append(threading.current_thread().name)
        if len(quiet_threads) >= 3:
            gate.set()

    t = time.monotonic()
    assert list(engine._paced(stream(), on_quiet)) == ["a", "b"]
    assert len(quiet_threads) >= 3 and set(quiet_threads) == {threading.current_thread().name}
    assert time.monotonic() - t < 4


@pytest.mark.parametrize("error", [engine.EngineError("lost"), OSError("reset"), ValueError("x")])
def test_paced_raises_the_streams_error_here(error):
    def stream():
        yield 1
        raise error

    got = []
    with pytest.raises(type(error)) as caught:
        for item in engine._paced(stream(), lambda: None):
            got.append(item)
    assert got == [1] and caught.value is error


@pytest.mark.parametrize("pause_every", [0, 1, 7, 250])
def test_paced_hands_over_every_item_once_and_in_order_however_they_come(pause_every):
    """Items are handed over in bursts while the reader goes on adding: none may be lost,
    doubled or reordered, whether they come all at once, one by one or in runs."""
    import time

    def stream():
        for i in range(3000):
            if pause_every and i % pause_every == 0:
                time.sleep(0.0001 if pause_every < 100 else 0.06)  # 0.06: quiet spells too
            yield i

    quiet = []
    assert list(engine._paced(stream(), lambda: quiet.append(1))) == list(range(3000))
    if pause_every == 250:
        assert quiet  # 12 silences longer than QUIET_SECONDS


def test_paced_without_on_quiet_is_the_stream_itself():
    assert list(engine._paced(iter([1, 2, 3]), None)) == [1, 2, 3]


@pytest.mark.django_db
def test_lines_held_when_a_stream_goes_silent_are_stored_and_relayed_during_the_silence(relayed):
    """A build prints a burst, then a step runs for a long time without a word: the end of the
    burst must reach viewers now, not when the step ends."""
    import threading

    deploy = DeployFactory()
    log = logstream.DeployLog(deploy)
    step_may_end = threading.Event()
    seen_during_silence: list[list[tuple[int, str]]] = []

    def build_output():
        yield from ("Step 1/2 : RUN make", "compiling a", "compiling b")
        step_may_end.wait(10)
        yield "Step 2/2 : CMD run"

    def on_quiet():
        log.flush()
        if not step_may_end.is_set():
            seen_during_silence.append(_stored(deploy))
            step_may_end.set()

    with log.batched():
        for text in engine._paced(build_output(), on_quiet):
            log(text)
    assert seen_during_silence == [
        [(1, "Step 1/2 : RUN make"), (2, "compiling a"), (3, "compiling b")]
    ]
    assert [s for batch in relayed for s, _ in batch] == [1, 2, 3, 4]


def test_a_relay_loop_made_before_fork_is_not_used_by_the_child():
    """The worker's sweep may relay a status before RQ forks a work horse: the child must not
    share the parent's loop (its selector and Redis socket)."""
    import os

    parent = logstream._relay_loop()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child's answer is checked below)
        try:
            child = logstream._relay_loop()
            again = logstream._relay_loop()
            ok = child is not parent and again is child and not child.is_closed()
            os.write(write, b"own loop" if ok else b"parent's loop")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 64) == b"own loop"
    assert logstream._relay_loop() is parent and not parent.is_closed()
