"""The only module that knows GitHub's webhook formats: signatures and payloads.

GitHub signs the raw request body with the webhook's secret (HMAC-SHA256) and sends it as
`X-Hub-Signature-256: sha256=<hex>`. Payload parsing turns a `push` or `workflow_run` body
into a small `Decision`: deploy this commit, or ignore it and say why.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import ValidationError

from apps.validators import COMMIT_RE, validate_commit

Payload = dict[str, Any]
T = TypeVar("T")
ZERO_SHA = "0" * 40
_SIGNATURE_RE = re.compile(r"sha256=([0-9a-fA-F]{64})")


class PayloadError(Exception):
    """The body is not a webhook payload Koyra can read; str() says what is wrong."""


@dataclass(frozen=True)
class Decision:
    deploy: bool
    reason: str
    commit: str = ""  # the commit the payload names, also when it is ignored


def signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for `body` under `secret`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_is_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of an X-Hub-Signature-256 header against the raw body.

    A missing, malformed or SHA-1 (`sha1=`) header is invalid. The format is checked first:
    `compare_digest` refuses non-ASCII str, and a header is attacker-controlled text.
    """
    m = _SIGNATURE_RE.fullmatch((header or "").strip())
    if m is None or not secret:
        return False
    expected = signature(secret, body).encode()
    return hmac.compare_digest(expected, f"sha256={m.group(1).lower()}".encode())


def load(body: bytes) -> Payload:
    """The JSON object in a webhook body, or PayloadError."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        # GitHub's other content type sends `payload=<urlencoded JSON>`.
        hint = " (set the webhook's content type to application/json)"
        form = body[:8] == b"payload="
        raise PayloadError(f"the body is not JSON{hint if form else ''}: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("the body is JSON but not an object")
    return payload


def decide(
    *, event: str, payload: Payload, branch: str, trigger: str, repo_full_name: str
) -> Decision:
    """What a verified delivery of `event` means for an app on `branch` with `trigger`."""
    if event == "ping":
        return _ping(payload, trigger)
    if event == "push":
        return _push(payload, branch, trigger)
    if event == "workflow_run":
        return _workflow_run(payload, branch, trigger, repo_full_name)
    if not event:
        raise PayloadError("no X-GitHub-Event header: is this a GitHub webhook?")
    return Decision(
        False, f"{event} events never deploy: this app deploys on {_trigger_event(trigger)}"
    )


def _trigger_event(trigger: str) -> str:
    return "push" if trigger == "push" else "a successful workflow_run (CI)"


def _ping(payload: Payload, trigger: str) -> Decision:
    # The ping carries the hook's configuration: say so now if it will never deploy.
    events = _get(payload, "hook", dict, required=False).get("events") or []
    if isinstance(events, list) and events and "*" not in events and trigger not in events:
        return Decision(
            False,
            f"ping: the webhook reaches Koyra, but it only sends {', '.join(map(str, events))}"
            f" events and this app deploys on {trigger}: add {trigger} to its events",
        )
    return Decision(False, "ping: the webhook reaches Koyra")


def _push(payload: Payload, branch: str, trigger: str) -> Decision:
    ref = _get(payload, "ref", str)
    after = _get(payload, "after", str)
    commit = _sha_or_blank(after)
    want = f"refs/heads/{branch}"
    if trigger != "push":
        return Decision(
            False,
            f"push to {ref} ignored: this app waits for CI (trigger workflow_run) and deploys "
            "when a workflow run on its branch succeeds",
            commit,
        )
    if ref.startswith("refs/tags/"):
        return Decision(False, f"tag push ({ref}): only pushes to {want} deploy", commit)
    if ref != want:
        return Decision(False, f"push to {ref}, app deploys {want}", commit)
    if payload.get("deleted") is True or after == ZERO_SHA:
        return Decision(False, f"{ref} was deleted: nothing to deploy")
    return Decision(True, f"push to {ref}", _commit(after, "after"))


def _workflow_run(payload: Payload, branch: str, trigger: str, repo_full_name: str) -> Decision:
    run = _get(payload, "workflow_run", dict)
    sha = run.get("head_sha")
    title = f"workflow run {run.get('name') or run.get('id') or ''}".rstrip()
    if trigger != "workflow_run":
        return Decision(
            False,
            f"{title} ignored: this app deploys on push (trigger push), not after CI",
            _sha_or_blank(sha),
        )
    reason = _workflow_run_refusal(payload, run, branch, repo_full_name)
    if reason:
        return Decision(False, f"{title}: {reason}", _sha_or_blank(sha))
    return Decision(True, f"{title} succeeded on {branch}", _commit(sha, "workflow_run.head_sha"))


def _workflow_run_refusal(payload: Payload, run: Payload, branch: str, repo_full_name: str) -> str:
    """Why a workflow_run must not deploy, or "" when it should."""
    action = _get(payload, "action", str)
    if action != "completed":
        return f"{action}, not completed yet; Koyra deploys once it completes with success"
    if run.get("conclusion") != "success":
        return f"concluded {run.get('conclusion')}; only a success deploys"
    if run.get("event") != "push":
        return f"ran for a {run.get('event')} event; only runs for pushes deploy"
    # A fork's pull request can name its branch like ours: only our own repository's runs.
    head_repo = _get(run, "head_repository", dict, required=False).get("full_name")
    if (
        not head_repo
        or not isinstance(head_repo, str)
        or head_repo.lower() != repo_full_name.lower()
    ):
        return f"ran on {head_repo}, not on the app's repository {repo_full_name}"
    if run.get("head_branch") != branch:
        return f"ran on branch {run.get('head_branch')}, app deploys {branch}"
    return ""


def _get(payload: Payload, key: str, kind: type[T], *, required: bool = True) -> T:
    value = payload.get(key)
    if isinstance(value, kind):
        return value
    if value is None and not required:
        return kind()
    raise PayloadError(f"the payload's {key!r} is missing or not a {kind.__name__}")


def _sha_or_blank(value: object) -> str:
    """A commit worth recording on an ignored delivery: a real SHA, else nothing."""
    return value if isinstance(value, str) and COMMIT_RE.match(value) and value != ZERO_SHA else ""


def _commit(sha: object, field: str) -> str:
    try:
        validate_commit(sha if isinstance(sha, str) else "")
    except ValidationError:
        raise PayloadError(f"{field} is not a full commit SHA: {str(sha)[:60]!r}") from None
    return str(sha)
