"""Strict patterns for everything a user names that later reaches git, docker or a label."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

APP_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}$")
RESERVED_APP_NAMES = {"new"}
# git check-ref-format, narrowed: no shell metacharacters, no "..", no leading "-" or "/".
BRANCH_RE = re.compile(r"^(?![-/.])(?!.*\.\.)(?!.*//)(?!.*@\{)[A-Za-z0-9._/-]{1,200}(?<![./])$")
DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$"
)
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})"
_PATH = r"[A-Za-z0-9._~/-]+"
REPO_URL_RES = [
    re.compile(rf"^https://{_HOST}(?::\d{{1,5}})?/{_PATH}$"),
    re.compile(rf"^ssh://(?:[A-Za-z0-9._-]+@)?{_HOST}(?::\d{{1,5}})?/{_PATH}$"),
    re.compile(rf"^[A-Za-z0-9._-]+@{_HOST}:(?!-){_PATH}$"),
    re.compile(rf"^file:///{_PATH}$"),
]
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
SECRET_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def validate_app_name(value: str) -> None:
    if value in RESERVED_APP_NAMES:
        raise ValidationError(f"App name {value!r} is reserved; choose another name.")
    if not APP_NAME_RE.match(value or ""):
        raise ValidationError(
            f"App name {value!r} is not allowed: use 1-39 characters, lowercase letters, "
            "digits and '-', starting with a letter (e.g. 'shop-api')."
        )


def validate_branch(value: str) -> None:
    if not BRANCH_RE.match(value or ""):
        raise ValidationError(
            f"Branch {value!r} is not a valid branch name: use letters, digits and . _ / - "
            "only (e.g. 'main' or 'release/v2')."
        )


def validate_domain(value: str) -> None:
    if not DOMAIN_RE.match(value or ""):
        raise ValidationError(
            f"Domain {value!r} is not a valid host name: use a lowercase name like "
            "'shop.example.com' (no scheme, port or path)."
        )


def validate_repo_url(value: str) -> None:
    from django.conf import settings

    if (value or "").startswith("file://") and not settings.KOYRA_ALLOW_FILE_REPOS:
        raise ValidationError(
            f"Repository {value!r} is a path on the Koyra server; such repositories are off "
            "unless KOYRA_ALLOW_FILE_REPOS=1 (anyone who may create apps could read any "
            "repository on this machine). Use an https:// or ssh URL."
        )
    if ".." in (value or "") or not any(r.match(value or "") for r in REPO_URL_RES):
        raise ValidationError(
            f"Repository {value!r} is not a git URL Koyra accepts: use "
            "https://github.com/owner/repo.git, git@github.com:owner/repo.git, "
            "ssh://git@host/owner/repo.git or file:///path/to/repo."
        )


def validate_commit(value: str) -> None:
    if not COMMIT_RE.match(value or ""):
        raise ValidationError(
            f"Commit {value!r} is not a full commit SHA: give all 40 lowercase hex characters."
        )


def validate_secret_key(value: str) -> None:
    if not SECRET_KEY_RE.match(value or ""):
        raise ValidationError(
            f"Secret name {value!r} is not a valid environment variable name: use letters, "
            "digits and '_', not starting with a digit (e.g. DATABASE_URL)."
        )
