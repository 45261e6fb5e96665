"""Strict patterns for everything a user names that later reaches git, docker or a label.

Every pattern is anchored (\\A ... \\Z) and applied with `fullmatch`, to `str` values only:
never `match` with `$`, which also accepts a trailing newline. Every message quotes the user's
value truncated (`quote`)."""

from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError

APP_NAME_PATTERN = r"[a-z][a-z0-9-]{0,38}"  # also the URL converter (apps/converters.py)
APP_NAME_RE = re.compile(rf"\A{APP_NAME_PATTERN}\Z")
RESERVED_APP_NAMES = {"new"}
# git check-ref-format, narrowed: no shell metacharacters, no "..", no leading "-" or "/".
BRANCH_RE = re.compile(r"\A(?![-/.])(?!.*\.\.)(?!.*//)(?!.*@\{)[A-Za-z0-9._/-]{1,200}(?<![./])\Z")
DOMAIN_RE = re.compile(
    r"\A(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}\Z"
)
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})"
_PATH = r"[A-Za-z0-9._~/-]+"
REPO_URL_RES = [
    re.compile(rf"\Ahttps://{_HOST}(?::\d{{1,5}})?/{_PATH}\Z", re.ASCII),
    re.compile(rf"\Assh://(?:[A-Za-z0-9._-]+@)?{_HOST}(?::\d{{1,5}})?/{_PATH}\Z", re.ASCII),
    re.compile(rf"\A[A-Za-z0-9._-]+@{_HOST}:(?!-){_PATH}\Z", re.ASCII),
    re.compile(rf"\Afile:///{_PATH}\Z", re.ASCII),
]
COMMIT_RE = re.compile(r"\A[0-9a-f]{40}\Z")
DIGEST_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
SECRET_KEY_PATTERN = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
SECRET_KEY_RE = re.compile(rf"\A{SECRET_KEY_PATTERN}\Z")
# C0 controls but tab and newline, and DEL: nothing a shell line or an env value should carry
# (NUL cannot be in an environment variable at all).
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
MAX_DOMAINS = 100
# A secret is an environment variable; the deploy log cuts lines well before 1 MiB after
# redacting them, which holds only for values far shorter than that.
MAX_SECRET_BYTES = 64 * 1024
_LOG_CURSOR_RE = re.compile(r"[0-9]{1,18}")
QUOTE_MAX = 60


def quote(value: object, limit: int = QUOTE_MAX) -> str:
    """repr() of a user's value, cut to `limit` characters: never a megabyte in a message."""
    if isinstance(value, str) and len(value) > 4 * limit:
        value = value[: 4 * limit]  # repr() of a huge string is never built
    text = repr(value) if isinstance(value, (str, int, float, bool)) or value is None else None
    if text is None:
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def matches(pattern: re.Pattern[str], value: object) -> bool:
    """Whether `value` is a str that the whole pattern matches."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def validate_app_name(value: str) -> None:
    if isinstance(value, str) and value in RESERVED_APP_NAMES:
        raise ValidationError(f"App name {quote(value)} is reserved; choose another name.")
    if not matches(APP_NAME_RE, value):
        raise ValidationError(
            f"App name {quote(value)} is not allowed: use 1-39 characters, lowercase letters, "
            "digits and '-', starting with a letter (e.g. 'shop-api')."
        )


def validate_branch(value: str) -> None:
    if not matches(BRANCH_RE, value):
        raise ValidationError(
            f"Branch {quote(value)} is not a valid branch name: use letters, digits and "
            ". _ / - only (e.g. 'main' or 'release/v2')."
        )


def validate_domain(value: str) -> None:
    if not matches(DOMAIN_RE, value):
        raise ValidationError(
            f"Domain {quote(value)} is not a valid host name: use a lowercase name like "
            "'shop.example.com' (no scheme, port or path)."
        )


def validate_domain_list(value: object) -> None:
    """An app's domains (App.domains, a JSON field): a list of distinct host names."""
    _validate_list(
        value,
        each=validate_domain,
        most=MAX_DOMAINS,
        not_a_list='Domains must be a list of host names like ["shop.example.com"]',
        too_many=f"At most {MAX_DOMAINS} domains per app.",
        twice="A domain is listed twice.",
    )


def _validate_list(
    value: object,
    *,
    each: Callable[[Any], None],
    most: int,
    not_a_list: str,
    too_many: str,
    twice: str,
) -> None:
    """A JSON list setting: a list, at most `most` items, each valid, none twice."""
    if not isinstance(value, list):
        raise ValidationError(f"{not_a_list}, not {quote(value)}.")
    if len(value) > most:
        raise ValidationError(too_many)
    for item in value:
        each(item)
    if len(set(value)) != len(value):
        raise ValidationError(twice)


def reserved_hosts() -> set[str]:
    """Koyra's own host names, which no app may claim (Traefik would route Koyra's login to
    it): the host of KOYRA_BASE_URL, every ALLOWED_HOSTS entry, localhost and 127.0.0.1. A
    wildcard entry ('*') reserves nothing more; '.example.com' reserves example.com itself,
    not its subdomains (where the apps usually live)."""
    from urllib.parse import urlsplit

    from django.conf import settings

    hosts = {"localhost", "127.0.0.1"}
    base = urlsplit(settings.KOYRA_BASE_URL).hostname
    hosts.update([base] if base else [])
    for entry in settings.ALLOWED_HOSTS:
        entry = entry.strip().lower().lstrip(".")
        if entry and "*" not in entry:
            hosts.add(entry)
    return {h.lower().rstrip(".") for h in hosts}


def validate_domain_not_reserved(value: str) -> None:
    if isinstance(value, str) and value.lower().rstrip(".") in reserved_hosts():
        raise ValidationError(
            f"Domain {quote(value)} is Koyra's own host name (KOYRA_BASE_URL or ALLOWED_HOSTS) "
            "and cannot route to an app; choose another host name."
        )


def validate_repo_url(value: str) -> None:
    from django.conf import settings

    if (
        isinstance(value, str)
        and value.startswith("file://")
        and not settings.KOYRA_ALLOW_FILE_REPOS
    ):
        raise ValidationError(
            f"Repository {quote(value)} is a path on the Koyra server; such repositories are "
            "off unless KOYRA_ALLOW_FILE_REPOS=1 (anyone who may create apps could read any "
            "repository on this machine). Use an https:// or ssh URL."
        )
    if (
        not isinstance(value, str)
        or ".." in value
        or not any(matches(r, value) for r in REPO_URL_RES)
    ):
        raise ValidationError(
            f"Repository {quote(value)} is not a git URL Koyra accepts: use "
            "https://github.com/owner/repo.git, git@github.com:owner/repo.git, "
            "ssh://git@host/owner/repo.git or file:///path/to/repo."
        )


# A swarm node as an operator names it: its id (or the start of it) or its hostname.
NODE_REF_RE = re.compile(r"\A[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})\Z")


def validate_node_ref(value: str) -> None:
    if not matches(NODE_REF_RE, value):
        raise ValidationError(
            f"Invalid node {quote(value)}: give a node's id or hostname as `list_nodes` shows "
            "them (letters, digits, '.', '_' and '-')."
        )


# A Swarm placement constraint (manifest `run.constraints`): a node attribute Swarm knows, `==`
# or `!=`, and a plain value; spaces around the operator are allowed (and dropped).
_PLAIN = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?"
CONSTRAINT_RE = re.compile(
    r"\A(?P<attr>node\.(?:id|hostname|role|platform\.os|platform\.arch)"
    rf"|(?:node|engine)\.labels\.{_PLAIN})"
    rf" *(?P<op>==|!=) *(?P<value>{_PLAIN})\Z",
    re.ASCII,
)
MAX_CONSTRAINTS = 20


def placement_constraint(value: object) -> str:
    """`value` as Swarm takes it (`node.labels.tier==web`), or ValidationError naming it."""
    m = CONSTRAINT_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise ValidationError(
            f"{quote(value)} is not a placement constraint: write ATTRIBUTE==VALUE or "
            "ATTRIBUTE!=VALUE with ATTRIBUTE one of node.id, node.hostname, node.role, "
            "node.platform.os, node.platform.arch, node.labels.NAME, engine.labels.NAME "
            "(e.g. node.labels.tier==web) and a plain VALUE (letters, digits, '.', '_', '-')."
        )
    if m["attr"] == "node.role" and m["value"] not in ("manager", "worker"):
        raise ValidationError(
            f"{quote(value)}: node.role is manager or worker, not {quote(m['value'])}."
        )
    return f"{m['attr']}{m['op']}{m['value']}"


def validate_commit(value: str) -> None:
    if not matches(COMMIT_RE, value):
        raise ValidationError(
            f"Commit {quote(value)} is not a full commit SHA: give all 40 lowercase hex characters."
        )


def validate_image_digest(value: str) -> None:
    if not matches(DIGEST_RE, value):
        raise ValidationError(
            f"Image digest {quote(value)} is not a registry digest: sha256: and 64 lowercase hex "
            "characters."
        )


def validate_secret_key(value: str) -> None:
    if not matches(SECRET_KEY_RE, value):
        raise ValidationError(
            f"Secret name {quote(value)} is not a valid environment variable name: use "
            "letters, digits and '_', not starting with a digit (e.g. DATABASE_URL)."
        )


def validate_secret_value(key: str, value: str) -> None:
    """What an environment variable can hold exactly: text, no NUL. (A form's bytes that were
    not UTF-8 arrive as U+FFFD: refused rather than stored altered.)"""
    if len(value.encode(errors="replace")) > MAX_SECRET_BYTES:
        raise ValidationError(f"The value for {key} is over {MAX_SECRET_BYTES // 1024} KiB.")
    if "\x00" in value:
        raise ValidationError(
            f"The value for {key} contains a NUL byte, which an environment variable cannot "
            "hold; store it encoded (e.g. base64) instead."
        )
    if "\ufffd" in value:
        raise ValidationError(
            f"The value for {key} is not valid UTF-8 text (it holds U+FFFD, the stand-in for "
            "bytes that do not decode); store binary values encoded (e.g. base64)."
        )
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValidationError(
            f"The value for {key} is not valid UTF-8 text; store binary values encoded "
            "(e.g. base64)."
        ) from None


def control_character(value: str) -> str | None:
    """The first control character in `value` (tab and newline allowed), as `\\xNN`."""
    m = CONTROL_RE.search(value)
    return f"\\x{ord(m.group()):02x}" if m else None


def log_cursor(value: str | None) -> int:
    """A log position from a query string or Last-Event-ID: ASCII digits only (not "²", not
    5000 of them), else 0, which replays the log from its start."""
    if value is None or not _LOG_CURSOR_RE.fullmatch(value):
        return 0
    return int(value)


RUNTIME_LOG_TAIL_DEFAULT = 200
RUNTIME_LOG_TAIL_MAX = 1000
_LOG_TAIL_RE = re.compile(r"[0-9]{1,4}")


def log_tail(value: str | None) -> int:
    """How many past lines a runtime log starts with: 1..RUNTIME_LOG_TAIL_MAX in ASCII digits;
    absent means the default. Anything else is a ValidationError naming the range."""
    if value is None or value == "":
        return RUNTIME_LOG_TAIL_DEFAULT
    if not _LOG_TAIL_RE.fullmatch(value) or not 1 <= int(value) <= RUNTIME_LOG_TAIL_MAX:
        raise ValidationError(
            f"tail must be a whole number of lines from 1 to {RUNTIME_LOG_TAIL_MAX} "
            f"(default {RUNTIME_LOG_TAIL_DEFAULT})."
        )
    return int(value)


_LOG_STAMP_RE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?Z"
)


def log_since(value: str | None) -> str | None:
    """A runtime log's resume point (its Last-Event-ID, the engine's UTC timestamp of the last
    line shown) as the engine's `since` (`seconds.nanoseconds`); None, so a plain tail, when
    absent or not such a timestamp."""
    m = _LOG_STAMP_RE.fullmatch(value or "")
    if m is None:
        return None
    try:
        when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    seconds = calendar.timegm(when.timetuple())
    return f"{seconds}.{(m.group(2) or '').ljust(9, '0')}"


# An HTTPS token for an app's repository (GitHub's are `github_pat_...` or `ghp_...`): visible
# ASCII only, as git's askpass answers it on one line; never quoted back in a message.
REPO_TOKEN_RE = re.compile(r"\A[\x21-\x7e]{1,1024}\Z")


def validate_repo_token(value: str) -> None:
    if not matches(REPO_TOKEN_RE, value):
        raise ValidationError(
            "The repository token is not valid: give the token alone, 1-1024 visible ASCII "
            "characters without spaces (e.g. a fine-grained token github_pat_...), read from "
            "stdin; it is not shown here."
        )


# A GitHub workflow's `name:` as workflow_run payloads carry it: printable, no surrounding space.
WORKFLOW_NAME_RE = re.compile(r"\A\S(?:[^\x00-\x1f\x7f]{0,98}\S)?\Z")
MAX_WORKFLOWS = 20


def validate_workflow_name(value: str) -> None:
    if not matches(WORKFLOW_NAME_RE, value) or not value.isprintable():
        raise ValidationError(
            f"Workflow name {quote(value)} is not valid: give the workflow's name as GitHub "
            "shows it (its `name:` line, e.g. 'Tests'), 1-100 printable characters."
        )


def validate_workflows(value: object) -> None:
    """An app's workflows (App.workflows, a JSON field): a list of distinct workflow names."""
    _validate_list(
        value,
        each=validate_workflow_name,
        most=MAX_WORKFLOWS,
        not_a_list='Workflows must be a list of names like ["Tests"]',
        too_many=f"At most {MAX_WORKFLOWS} workflows per app.",
        twice="A workflow is listed twice: list each workflow once.",
    )


def validate_workflows_trigger(workflows: list[str], trigger: str) -> None:
    """Workflows gate CI deploys only: on an app deploying on push they would do nothing."""
    if workflows and trigger != "workflow_run":
        raise ValidationError(
            "Workflows only gate deploys of an app with trigger workflow_run (it deploys after "
            "CI); this app deploys on push: set the trigger to workflow_run, or clear the "
            "workflows."
        )


# One known_hosts line (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): [marker] hosts keytype key.
KNOWN_HOSTS_LINE_RE = re.compile(
    r"\A(?:@(?:cert-authority|revoked) )?[^\s@]\S* "
    r"(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|"
    r"sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}(?: [^\n]*)?\Z"
)


def validate_known_hosts(value: str) -> None:
    """KOYRA_GIT_KNOWN_HOSTS: known_hosts lines (blank lines and # comments allowed), each
    with its key, not a fingerprint."""
    for number, line in enumerate(value.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#") and not matches(KNOWN_HOSTS_LINE_RE, line):
            raise ValidationError(
                f"KOYRA_GIT_KNOWN_HOSTS line {number} ({quote(line)}) is not a known_hosts "
                "line: give 'HOST KEYTYPE KEY' as `ssh-keyscan HOST` prints it (checked "
                "against the server's own fingerprints), not a fingerprint."
            )


# An app's plain env vars (App.env, set_env): names like the manifest's `env` and secrets,
# values text an environment variable can hold, bounded (they travel in the service spec).
MAX_ENV_VARS = 100
MAX_ENV_VALUE_BYTES = 32 * 1024


def validate_env_key(value: str) -> None:
    if not matches(SECRET_KEY_RE, value):
        raise ValidationError(
            f"Variable name {quote(value)} is not a valid environment variable name: use "
            "letters, digits and '_', not starting with a digit (e.g. LOG_LEVEL)."
        )


def validate_env_value(key: str, value: object) -> None:
    """Like a manifest `env` value: text without control characters but tab and newline (no
    NUL, which an environment variable cannot hold), at most MAX_ENV_VALUE_BYTES."""
    if not isinstance(value, str):
        raise ValidationError(f"The value for {key} must be text, not {quote(value)}.")
    if len(value.encode(errors="replace")) > MAX_ENV_VALUE_BYTES:
        raise ValidationError(
            f"The value for {key} is over {MAX_ENV_VALUE_BYTES // 1024} KiB; keep env values "
            "short (a file belongs in the image or a secret)."
        )
    bad = control_character(value)
    if bad:
        raise ValidationError(f"The value for {key} contains the control character {bad}.")
    if "\ufffd" in value or not _utf8(value):
        raise ValidationError(
            f"The value for {key} is not valid UTF-8 text; store binary values encoded "
            "(e.g. base64)."
        )


def _utf8(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def validate_env(value: object) -> None:
    """An app's plain env vars (App.env, a JSON field): a mapping of valid names to values."""
    if not isinstance(value, dict):
        raise ValidationError(
            f'Env must be a mapping of names to values like {{"LOG_LEVEL": "info"}}, not '
            f"{quote(value)}."
        )
    if len(value) > MAX_ENV_VARS:
        raise ValidationError(f"At most {MAX_ENV_VARS} env vars per app.")
    for key, item in value.items():
        validate_env_key(key)
        validate_env_value(key, item)
