"""`.paas/app.yaml` as a hostile user writes it: every case is a clear ManifestError naming the
field (and line where YAML gives one), fast, in bounded memory, quoting values truncated."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from deployments.manifest import ManifestError, parse

LAUGHS = "".join(
    f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
CASES = {
    "alias-bomb": (
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + LAUGHS,
        "line 1: not valid YAML: aliases and anchors",
    ),
    "one-alias": ("env: &e {A: x}\nbuild: {args: *e}\n", "aliases and anchors"),
    "anchor-only": ("env: &e {A: x}\n", "aliases and anchors"),
    "merge-key": ("run:\n  <<: {port: 80}\n", "line 2: not valid YAML: merge keys (<<)"),
    "duplicate-top-key": ("env: {A: x}\nenv: {B: y}\n", "duplicate key 'env' (first on line 1)"),
    "duplicate-nested-key": (
        "run:\n  healthcheck:\n    path: /a\n    path: /b\n",
        "line 4: not valid YAML: duplicate key 'path'",
    ),
    "duplicate-env-name": ("env:\n  A: x\n  A: y\n", "duplicate key 'A'"),
    "duplicate-after-quoting": ('env:\n  A: x\n  "A": y\n', "duplicate key 'A'"),
    "duplicate-flow-key": ("run: {port: 80, port: 81}\n", "duplicate key 'port'"),
    "list-as-key": ("? [a, b]\n: 1\n", "a key must be a plain name"),
    "mapping-as-key": ("? {a: b}\n: 1\n", "a key must be a plain name"),
    "int-key": ("1: x\n", "key 1 must be a string"),
    "bool-key-in-env": ("env:\n  true: x\n", "env: key True must be a string"),
    "null-key": ("env:\n  ~: x\n", "key None must be a string"),
    "huge": ("# x\n" * 20_000, "is over 64 KiB"),
    "huge-one-line": ("env: {A: " + "x" * 70_000 + "}\n", "is over 64 KiB"),
    "deep-flow": ("[" * 10_000 + "]" * 10_000, "nested deeper than 20 levels"),
    "deep-block": ("".join(" " * i + f"k{i}:\n" for i in range(40)), "nested deeper"),
    "5000-digit-port": ("run: {port: " + "9" * 5000 + "}\n", "a value cannot be read"),
    "huge-memory": (
        "run: {resources: {memory: " + "9" * 400 + "G}}\n",
        "run.resources.memory: must be a size",
    ),
    "memory-too-big": ("run: {resources: {memory: 999999T}}\n", "must be from 6M to 1T"),
    "memory-inf": ("run: {resources: {memory: .inf}}\n", "run.resources.memory"),
    "memory-unicode-digits": (
        "run: {resources: {memory: \u0665\u0661\u0662M}}\n",
        "run.resources.memory",
    ),
    "cpus-tiny": ("run: {resources: {cpus: 0.0000000001}}\n", "from 0.001 to 256"),
    "cpus-zero-string": ('run: {resources: {cpus: "1e-10"}}\n', "run.resources.cpus"),
    "cpus-nan": ("run: {resources: {cpus: .nan}}\n", "run.resources.cpus"),
    "cpus-bool": ("run: {resources: {cpus: true}}\n", "run.resources.cpus"),
    "cpus-underscore": ("run: {resources: {cpus: '1_0'}}\n", "run.resources.cpus"),
    "nul-in-env": ('env: {A: "x\\0y"}\n', "env.A: contains the control character \\x00"),
    "escape-in-env": ('env: {A: "\\e[2J"}\n', "env.A: contains the control character \\x1b"),
    "cr-in-build-arg": ('build: {args: {A: "x\\ry"}}\n', "build.args.A: contains the control"),
    "nul-in-release": ('release: ["echo \\0"]\n', "release[0]: contains the control character"),
    "bell-in-predeploy": ('predeploy: ["echo \\a"]\n', "predeploy[0]: contains the control"),
    "nul-in-dockerfile": ('build: {dockerfile: "a\\0"}\n', "build.dockerfile: contains"),
    "newline-in-env-name": ('env: {"A\\n": x}\n', "env.'A\\n': is not a valid variable name"),
    "lookalike-env-name": ("env: {\u0410: x}\n", "is not a valid variable name"),
    "newline-in-secret-name": ('secrets: ["A\\n"]\n', "secrets[0]: must be a variable name"),
    "newline-in-domain": ('run: {domains: ["a.io\\n"]}\n', "run.domains[0]: 'a.io\\n' is not"),
    "backtick-domain": ("run: {domains: ['a.io`) || Host(`b']}\n", "is not a host name"),
    "long-domain": ("run: {domains: [" + "a" * 5000 + "]}\n", "'aaaaaaaa"),
    "duplicate-domain": ("run: {domains: [a.io, a.io]}\n", "lists a host name twice"),
    "env-as-list": ("env: [A, B]\n", "env: must be a mapping"),
    "env-value-mapping": ("env: {A: {b: c}}\n", "env.A: must be a string, number or boolean"),
    "env-value-date": ("env: {A: 2024-01-01}\n", "env.A: must be a string, number or boolean"),
    "binary-tag": ("env: {A: !!binary aGVsbG8=}\n", "env.A: must be a string"),
    "python-tag": ("env: {A: !!python/object/apply:os.system [id]}\n", "not valid YAML"),
    "two-documents": ("run: {port: 80}\n---\nrun: {port: 81}\n", "not valid YAML"),
    "long-unknown-field": ("? " + "x" * 3000 + "\n: 1\n", "unknown field"),
    "top-level-list": ("- a\n", "(top level): must be a mapping"),
}


@pytest.mark.parametrize(("text", "fragment"), list(CASES.values()), ids=list(CASES))
def test_a_hostile_manifest_is_a_clear_error_fast_and_small(text, fragment):
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ManifestError) as exc:
            parse(text)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(exc.value)
    assert message.startswith(".paas/app.yaml")
    assert fragment in message
    assert len(message) < 400  # user values are quoted truncated
    assert elapsed < 3
    assert peak < 32 * 1024**2


def test_a_manifest_just_under_the_cap_still_parses():
    text = "env: {A: x}\n" + "# padding\n" * 6000
    assert len(text.encode()) < 64 * 1024
    assert parse(text).env == {"A": "x"}


def test_tabs_and_newlines_are_fine_in_commands_and_values():
    m = parse('env: {A: "a\\tb"}\nrelease:\n  - |\n    echo one\n    echo two\n')
    assert m.env == {"A": "a\tb"}
    assert m.release == ["echo one\n    echo two".replace("    ", "")]
