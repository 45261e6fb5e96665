"""Deliveries shaped like GitHub's own, in both content types GitHub sends.

The payloads follow the examples of GitHub's "Webhook events and payloads" documentation (the
`push` of Codertocat/Hello-World, the `workflow_run` of octo-org/octo-repo): the same fields,
nesting and types, trimmed of the long lists of URLs Koyra never reads. The headers are the
ones GitHub's Hookshot sends.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote, quote_plus

from deployments.webhooks import github

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = [JSON, FORM]
SECRET = "webhook-secret"  # what AppFactory encrypts
REPO = "octo-org/octo-repo"
REPO_URL = f"https://github.com/{REPO}.git"
SHA = "acb5820ced9479c074f688cc328bf03f341a511d"
BEFORE = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
ZERO = "0" * 40


def _user(login: str, user_id: int, kind: str = "User") -> dict:
    return {
        "login": login,
        "id": user_id,
        "node_id": "MDQ6VXNlcjIxMDMxMDY3",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "url": f"https://api.github.com/users/{login}",
        "html_url": f"https://github.com/{login}",
        "type": kind,
        "site_admin": False,
    }


def repository(full_name: str = REPO, *, push: bool = False) -> dict:
    owner, name = full_name.split("/")
    repo: dict[str, Any] = {
        "id": 186853002,
        "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": _user(owner, 21031067, "Organization"),
        "html_url": f"https://github.com/{full_name}",
        "description": None,
        "fork": False,
        "url": f"https://api.github.com/repos/{full_name}",
        "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "clone_url": f"https://github.com/{full_name}.git",
        "default_branch": "main",
    }
    if push:  # the push event's repository has Unix timestamps and the pusher's names
        repo.update(
            created_at=1557933565,
            pushed_at=1557933657,
            stargazers=0,
            master_branch="main",
            owner={**repo["owner"], "name": owner, "email": None},
        )
    else:
        repo.update(created_at="2019-05-15T15:19:25Z", pushed_at="2019-05-15T15:20:57Z")
    return repo


def _head_commit(sha: str, message: str = "Update README.md") -> dict:
    person = {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"}
    return {
        "id": sha,
        "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
        "distinct": True,
        "message": message,
        "timestamp": "2019-05-15T15:20:41Z",
        "url": f"https://github.com/{REPO}/commit/{sha}",
        "author": {**person, "username": "Codertocat"},
        "committer": {**person, "username": "Codertocat"},
        "added": [],
        "removed": [],
        "modified": ["README.md"],
    }


def push(
    *,
    sha: str = SHA,
    ref: str = "refs/heads/main",
    before: str = BEFORE,
    created: bool = False,
    deleted: bool = False,
    repo: str = REPO,
) -> dict:
    head = None if deleted else _head_commit(sha)
    return {
        "ref": ref,
        "before": before,
        "after": sha,
        "created": created,
        "deleted": deleted,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{repo}/compare/{before[:12]}...{sha[:12]}",
        "commits": [] if head is None else [head],
        "head_commit": head,
        "repository": repository(repo, push=True),
        "pusher": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
        "sender": _user("Codertocat", 21031067),
    }


def workflow_run(
    *,
    sha: str = SHA,
    name: str = "Build",
    action: str = "completed",
    conclusion: str | None = "success",
    event: str = "push",
    head_branch: str = "main",
    repo: str = REPO,
    head_repo: str | None = None,
    run_id: int = 30433642,
) -> dict:
    status = {"requested": "queued", "in_progress": "in_progress"}.get(action, "completed")
    workflow_id = 159038 + sum(map(ord, name))
    return {
        "action": action,
        "workflow_run": {
            "id": run_id,
            "name": name,
            "node_id": "MDEyOldvcmtmbG93IFJ1bjI2OTI4OQ==",
            "head_branch": head_branch,
            "head_sha": sha,
            "path": f".github/workflows/{name.lower()}.yml",
            "display_title": "Update README.md",
            "run_number": 562,
            "event": event,
            "status": status,
            "conclusion": conclusion if status == "completed" else None,
            "workflow_id": workflow_id,
            "check_suite_id": 414944374,
            "url": f"https://api.github.com/repos/{repo}/actions/runs/{run_id}",
            "html_url": f"https://github.com/{repo}/actions/runs/{run_id}",
            "pull_requests": [],
            "created_at": "2020-01-22T19:33:08Z",
            "updated_at": "2020-01-22T19:33:08Z",
            "run_attempt": 1,
            "run_started_at": "2020-01-22T19:33:08Z",
            "head_commit": {
                "id": sha,
                "tree_id": "d23f6eedb1e1b9610bbc754ddb5197bfe7271223",
                "message": "Create linter.yaml",
                "timestamp": "2020-01-22T19:33:05Z",
                "author": {"name": "Octo Cat", "email": "octocat@github.com"},
                "committer": {"name": "GitHub", "email": "noreply@github.com"},
            },
            "repository": repository(repo),
            "head_repository": repository(head_repo or repo),
        },
        "workflow": {
            "id": workflow_id,
            "node_id": "MDg6V29ya2Zsb3cxNTkwMzg=",
            "name": name,
            "path": f".github/workflows/{name.lower()}.yml",
            "state": "active",
        },
        "repository": repository(repo),
        "organization": _user(repo.split("/")[0], 33435682, "Organization"),
        "sender": _user("octocat", 583231),
    }


def ping(repo: str | None = REPO, events: list[str] | None = None) -> dict:
    payload = {
        "zen": "Design for failure.",
        "hook_id": 109948940,
        "hook": {
            "type": "Repository",
            "id": 109948940,
            "name": "web",
            "active": True,
            "events": events or ["push"],
            "config": {"content_type": "form", "insecure_ssl": "0", "url": "https://k.example/"},
        },
        "sender": _user("octocat", 583231),
    }
    if repo is not None:
        payload["repository"] = repository(repo)
    return payload


def encode(payload: dict, content_type: str, *, plus: bool = True) -> bytes:
    """The body GitHub sends for `payload` as `content_type` (form: payload=<urlencoded>)."""
    text = json.dumps(payload)
    if content_type == FORM:
        return b"payload=" + (quote_plus(text) if plus else quote(text, safe="")).encode()
    return text.encode()


def deliver(
    client,
    app_name: str,
    payload: dict | None = None,
    *,
    event: str = "push",
    content_type: str = JSON,
    body: bytes | None = None,
    delivery: str | None = None,
    secret: str = SECRET,
):
    """POST one signed delivery, the way GitHub's Hookshot does."""
    body = encode(payload or {}, content_type) if body is None else body
    return client.post(
        f"/webhooks/github/{app_name}/",
        data=body,
        content_type=content_type,
        headers={
            "User-Agent": "GitHub-Hookshot/044aadd",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "109948940",
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-Hub-Signature-256": github.signature(secret, body),
        },
    )
