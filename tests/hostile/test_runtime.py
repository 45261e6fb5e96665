"""What the worker holds and what a task runs stay exact and bounded, whatever a build prints or
a secret holds: log lines are cut after redaction, the start wrapper exports a secret byte for
byte, and the Traefik rule is built only from host names."""

from __future__ import annotations

import subprocess
import time

import pytest
from django.core.exceptions import ValidationError

from deployments import logstream, swarm_spec
from deployments.boundaries import engine
from deployments.release_spec import ReleaseSpec
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db

SECRET = "sk_live_0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_relay(monkeypatch):
    monkeypatch.setattr(logstream, "_send", lambda deploy_id, message: None)


@pytest.mark.parametrize(
    "line",
    [
        "x" * (34 * 1024**2),  # the stored 34 MB line
        "x" * (logstream.MAX_LINE - 2) + SECRET + "y" * 100,  # a secret across the cut
        "x" * (logstream.MAX_LINE - 10) + SECRET + "y" * 100,  # mostly before it
        "x" * logstream.MAX_LINE + SECRET,  # wholly after it
        SECRET * 5000,  # secrets only, far past the cut
    ],
    ids=["34MB", "secret-across-the-cut", "secret-mostly-before", "secret-after", "secrets-only"],
)
def test_a_stored_line_is_cut_after_redaction_and_says_so(line):
    deploy = DeployFactory()
    log = logstream.DeployLog(deploy, logstream.Redactor([SECRET]))
    log(line)
    (stored,) = deploy.log_lines.values_list("text", flat=True)
    assert len(stored) < logstream.MAX_LINE + 80
    assert "more characters of this line not stored" in stored
    # Not even the secret's first two characters: the line was redacted whole, then cut.
    assert SECRET[:2] not in stored


def test_a_short_line_is_stored_as_it_is():
    deploy = DeployFactory()
    logstream.DeployLog(deploy)("x" * logstream.MAX_LINE)
    assert deploy.log_text == "x" * logstream.MAX_LINE


def test_a_build_printing_without_newlines_holds_only_the_start_of_the_line():
    lines: list[str] = []
    buf = engine._LineBuffer(lines.append)
    chunk = "y" * 65536
    started = time.monotonic()
    for _ in range(800):  # 50 MB, one line
        buf.feed(chunk)
    buf.feed("\nnext line\n")
    assert time.monotonic() - started < 5  # linear, not quadratic
    assert [len(x) for x in lines] == [engine.MAX_LINE_HELD, 9]
    assert len(buf.pending) == 0


VALUES = {
    "pem-with-trailing-newline": "-----BEGIN KEY-----\nMIIB\n-----END KEY-----\n",
    "several-trailing-newlines": "value\n\n\n",
    "only-newlines": "\n\n",
    "ends-with-x": "abcx",
    "ends-with-xx-and-newline": "xx\n",
    "leading-and-trailing-blanks": "  padded \t",
    "shell-syntax": "$(id) `id` ${HOME} \\ ' \" ; | &",
    "percent-and-braces": "%x}{%%",
    "unicode": "pässwörd ✓ 🔑",
    "crlf": "line\r\n",
}


@pytest.mark.parametrize("value", list(VALUES.values()), ids=list(VALUES))
def test_the_start_wrapper_exports_a_secret_byte_for_byte(value, tmp_path, monkeypatch):
    """The real shell: `$(cat file)` alone would strip every trailing newline of a PEM key."""
    monkeypatch.setattr(swarm_spec, "SECRETS_DIR", str(tmp_path))
    (tmp_path / "koyra-KEY").write_bytes(value.encode())
    ref = swarm_spec.SecretRef(id="i", name="n", file="koyra-KEY", key="KEY")
    script = "\n".join([*swarm_spec.secret_exports([ref]), 'printf %s "$KEY"'])
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=True, timeout=10)
    assert out.stdout == value.encode()
    env = subprocess.run(
        ["/bin/sh", "-c", "\n".join([*swarm_spec.secret_exports([ref]), "env"])],
        capture_output=True,
        check=True,
        timeout=10,
    )
    assert b"KEY=" + value.encode() in env.stdout  # exported, not only set


def test_the_start_wrapper_stops_when_a_secret_file_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(swarm_spec, "SECRETS_DIR", str(tmp_path))
    ref = swarm_spec.SecretRef(id="i", name="n", file="koyra-GONE", key="GONE")
    script = "\n".join([*swarm_spec.secret_exports([ref]), "echo started"])
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, timeout=10)
    assert out.returncode == 1
    assert b"started" not in out.stdout


def _spec(domains: list) -> ReleaseSpec:
    return ReleaseSpec(image="r/shop@sha256:" + "a" * 64, entrypoint=[], cmd=[], domains=domains)


@pytest.mark.parametrize(
    "domains",
    [
        ["a.io`) || HostRegexp(`.+"],
        ["shop.io", "x`"],
        ["shop.io\n"],
        ["SHOP.IO"],
        [""],
        [None],
        ["shop.io:8080"],
        ["http://shop.io"],
    ],
    ids=lambda d: repr(d)[:30],
)
def test_the_traefik_rule_is_never_built_from_anything_but_host_names(domains):
    with pytest.raises(ValidationError):
        swarm_spec.traefik_labels(app=AppFactory(name="shop"), spec=_spec(domains))


def test_the_traefik_rule_of_good_domains():
    labels = swarm_spec.traefik_labels(app=AppFactory(name="shop"), spec=_spec(["a.io", "b.io"]))
    assert labels["traefik.http.routers.shop.rule"] == "Host(`a.io`) || Host(`b.io`)"


@pytest.mark.parametrize(
    ("ignore", "dockerfile", "message"),
    [
        ("/dev/zero", "Dockerfile", ".dockerignore must be a regular file"),
        ("{outside}", "Dockerfile", ".dockerignore must be a regular file"),
        ("dir", "Dockerfile", ".dockerignore must be a regular file"),
        (None, "../Dockerfile", "the Dockerfile must be inside the context"),
        (None, "/etc/passwd", "the Dockerfile must be inside the context"),
    ],
)
def test_the_engine_refuses_what_docker_py_would_read_outside_the_context(
    tmp_path, ignore, dockerfile, message
):
    """Defence in depth at the Docker boundary (the pipeline refuses these first)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "outside").write_text("*\n")
    if ignore == "dir":
        (ctx / ".dockerignore").mkdir()
    elif ignore is not None:
        (ctx / ".dockerignore").symlink_to(ignore.format(outside=tmp_path / "outside"))
    with pytest.raises(engine.EngineError, match=message):
        engine.build(
            context=str(ctx),
            dockerfile=dockerfile,
            tag="t",
            buildargs={},
            labels={},
            on_line=lambda line: None,
        )
