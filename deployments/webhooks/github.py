"""The only module that knows GitHub's webhook formats: signatures and payloads.

GitHub signs the raw request body with the webhook's secret (HMAC-SHA256) and sends it as
`X-Hub-Signature-256: sha256=<hex>`. The body is JSON, or (GitHub's default for a webhook added
by hand) `application/x-www-form-urlencoded` with the JSON in its one field `payload`. Payload
parsing turns a `push` or `workflow_run` body into a small `Decision`: deploy this commit, or
ignore it and say why. Every event is first checked against the app's repository.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from django.core.exceptions import ValidationError

from apps.validators import COMMIT_RE, validate_commit

Payload = dict[str, Any]
T = TypeVar("T")
ZERO_SHA = "0" * 40
FORM = "application/x-www-form-urlencoded"
_SIGNATURE_RE = re.compile(r"sha256=([0-9a-fA-F]{64})")


class PayloadError(Exception):
    """The body is not a webhook payload Koyra can read; str() says what is wrong."""


@dataclass(frozen=True)
class Decision:
    deploy: bool
    reason: str
    commit: str = ""  # the commit the payload names, also when it is ignored
    workflow: str = ""  # for a workflow_run: the workflow's name (what `workflows` lists)


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


def load(body: bytes, content_type: str = "application/json") -> Payload:
    """The JSON object in a webhook body of either content type GitHub sends, or PayloadError.

    `content_type` is the request's Content-Type header: `application/x-www-form-urlencoded`
    means `payload=<urlencoded JSON>`, anything else is taken as JSON. The signature was
    checked over the raw body before this: nothing here needs to be trusted for that.
    """
    media = content_type.partition(";")[0].strip().lower()
    if media == FORM:
        return _object(_form_payload(body), "the form field payload")
    try:
        return _object(body, "the body")
    except PayloadError as exc:
        if body[:8] != b"payload=":
            raise
        raise PayloadError(
            f"{exc} (it looks form-encoded, but its Content-Type is {media or 'missing'}, "
            f"not {FORM})"
        ) from None


def _form_payload(body: bytes) -> str:
    """The `payload` field of a form-encoded body: the only field, there exactly once."""
    try:
        fields = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(
            f"the form-encoded body is not payload=<urlencoded JSON>: {str(exc)[:200]}"
        ) from None
    values = [value for name, value in fields if name == "payload"]
    others = sorted({name[:40] for name, _ in fields if name != "payload"})
    if not values:
        raise PayloadError("the form-encoded body has no payload field (payload=<JSON>)")
    if len(values) > 1 or others:
        extra = f"other fields: {', '.join(others[:5])}" if others else "payload repeated"
        raise PayloadError(f"the form-encoded body has more than payload=<JSON> ({extra})")
    return values[0]


def _object(text: str | bytes, what: str) -> Payload:
    try:
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"{what} is not JSON: {exc}") from None
    except RecursionError:
        # Valid JSON nested deeper than Python's stack: no GitHub payload is anything like it.
        raise PayloadError(f"{what} is JSON nested too deeply to read") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"{what} is JSON but not an object")
    return payload


def decide(
    *, event: str, payload: Payload, branch: str, trigger: str, repo_full_name: str
) -> Decision:
    """What a verified delivery of `event` means for an app on `branch` with `trigger`, whose
    repository is `repo_full_name` (owner/name, compared case-insensitively)."""
    if event == "ping":
        return _ping(payload, trigger, repo_full_name)
    if event == "push":
        return _push(payload, branch, trigger, repo_full_name)
    if event == "workflow_run":
        return _workflow_run(payload, branch, trigger, repo_full_name)
    if not event:
        raise PayloadError("no X-GitHub-Event header: is this a GitHub webhook?")
    other = _other_repository(payload, repo_full_name, required=False)
    if other:
        return Decision(False, f"{event} {other}")
    return Decision(
        False, f"{event} events never deploy: this app deploys on {_trigger_event(trigger)}"
    )


def _trigger_event(trigger: str) -> str:
    return "push" if trigger == "push" else "a successful workflow_run (CI)"


def _other_repository(payload: Payload, repo_full_name: str, *, required: bool = True) -> str:
    """Why the delivery is not about the app's repository, or "" when it is.

    An organization's webhook, or one URL and secret pasted into a second repository, sends
    the other repositories' events here too: they must never deploy this app.
    """
    repository = _get(payload, "repository", dict, required=required)
    if not repository and not required:
        return ""
    name = repository.get("full_name")
    if not isinstance(name, str) or not name:
        raise PayloadError("the payload's 'repository.full_name' is missing or not a str")
    if _is_ours(name, repo_full_name):
        return ""
    return f"is for the repository {name[:100]}, not the app's repository {_ours(repo_full_name)}"


def _is_ours(name: str, repo_full_name: str) -> bool:
    return bool(repo_full_name) and name.lower() == repo_full_name.lower()


def _ours(repo_full_name: str) -> str:
    return repo_full_name or "(none: its URL names no owner/name)"


def _ping(payload: Payload, trigger: str, repo_full_name: str) -> Decision:
    # The ping carries the hook's configuration: say so now if it will never deploy.
    # An organization's hook pings without a repository; a repository's hook names it.
    other = _other_repository(payload, repo_full_name, required=False)
    if other:
        return Decision(False, f"ping: the webhook reaches Koyra, but it {other}")
    events = _get(payload, "hook", dict, required=False).get("events") or []
    if isinstance(events, list) and events and "*" not in events and trigger not in events:
        return Decision(
            False,
            f"ping: the webhook reaches Koyra, but it only sends {', '.join(map(str, events))}"
            f" events and this app deploys on {trigger}: add {trigger} to its events",
        )
    return Decision(False, "ping: the webhook reaches Koyra")


def _push(payload: Payload, branch: str, trigger: str, repo_full_name: str) -> Decision:
    ref = _get(payload, "ref", str)
    after = _get(payload, "after", str)
    commit = _sha_or_blank(after)
    want = f"refs/heads/{branch}"
    other = _other_repository(payload, repo_full_name)
    if other:
        return Decision(False, f"push to {ref} {other}", commit)
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
    name = run.get("name") or _get(payload, "workflow", dict, required=False).get("name")
    workflow = name if isinstance(name, str) else ""
    title = f"workflow run {workflow or run.get('id') or ''}".rstrip()
    other = _other_repository(payload, repo_full_name)
    if other:
        return Decision(False, f"{title} {other}", _sha_or_blank(sha), workflow)
    # A fork's pull request can name its branch like ours: only our own repository's runs.
    head_repo = _get(run, "head_repository", dict, required=False).get("full_name")
    if not isinstance(head_repo, str) or not _is_ours(head_repo, repo_full_name):
        why = f"ran on {str(head_repo)[:100]}, not on the app's repository {_ours(repo_full_name)}"
        return Decision(False, f"{title}: {why}", _sha_or_blank(sha), workflow)
    if trigger != "workflow_run":
        return Decision(
            False,
            f"{title} ignored: this app deploys on push (trigger push), not after CI",
            _sha_or_blank(sha),
            workflow,
        )
    reason = _workflow_run_refusal(payload, run, branch)
    if reason:
        return Decision(False, f"{title}: {reason}", _sha_or_blank(sha), workflow)
    commit = _commit(sha, "workflow_run.head_sha")
    return Decision(True, f"{title} succeeded on {branch}", commit, workflow)


def _workflow_run_refusal(payload: Payload, run: Payload, branch: str) -> str:
    """Why a workflow_run of the app's repository must not deploy, or "" when it should."""
    action = _get(payload, "action", str)
    if action != "completed":
        return f"{action}, not completed yet; Koyra deploys once it completes with success"
    if run.get("conclusion") != "success":
        return f"concluded {run.get('conclusion')}; only a success deploys"
    if run.get("event") != "push":
        return f"ran for a {run.get('event')} event; only runs for pushes deploy"
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
