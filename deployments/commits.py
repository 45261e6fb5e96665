"""The commit a deploy builds, as people know it: its message and author, read from the clone
and kept on the Deploy for the history, the deploy page and `list_deploys`.

Both are repository content, i.e. untrusted: control characters (terminal escapes, NULs) are
dropped here, lengths are bounded, and templates escape them like any other text."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from deployments.boundaries import git
from deployments.models import Deploy

MAX_MESSAGE = 4000
MAX_AUTHOR = 200
# C0 controls but tab and newline, DEL and C1 controls (ESC [ ... is how a terminal is driven).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str, limit: int) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def commit_record(*, deploy: Deploy, workspace: Path, say: Callable[[str], None]) -> None:
    """Store the message and author of the commit checked out in `workspace`. A commit git
    cannot describe (never expected after a clone) costs the deploy nothing: it says so."""
    try:
        info = git.commit_info(workspace, deploy.commit)
    except git.GitError as exc:
        say(f"commit message not recorded: {exc}")
        return
    deploy.commit_message = clean(info.message, MAX_MESSAGE)
    deploy.commit_author = clean(info.author.replace("\n", " "), MAX_AUTHOR)
    Deploy.objects.filter(pk=deploy.pk).update(
        commit_message=deploy.commit_message, commit_author=deploy.commit_author
    )
    if deploy.commit_subject:
        say(f"commit: {deploy.commit_subject[:200]} ({deploy.commit_author or 'no author'})")
