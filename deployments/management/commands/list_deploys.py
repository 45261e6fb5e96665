from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from apps.cli import get_app


class Command(BaseCommand):
    help = "The app's deploys, newest first, with each commit's subject and author."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        app = get_app(opts["name"])
        rows: list[dict[str, Any]] = [
            {
                "id": d.pk,
                "status": d.status,
                "commit": d.commit,
                "image": d.image.pinned if d.image else "",
                "trigger": d.trigger,
                "created": d.created.isoformat(),
                "finished": d.finished.isoformat() if d.finished else None,
                "error": d.error,
                # Recorded at clone: repository content, untrusted (see _printable below).
                "message": d.commit_subject,
                "author": d.commit_author,
            }
            for d in app.deploys.select_related("image").order_by("-created", "-id")
        ]
        if opts["json"]:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write(f"{app.name} has no deploys yet")
        for r in rows:
            self.stdout.write(
                f"{r['id']:>6}  {r['status']:<10}  {r['commit'][:12]:<12}  {r['trigger']:<12}  "
                f"{r['created'][:19]}  {(r['finished'] or '-')[:19]:<19}  {r['image'] or '-'}"
                + (f"  {_printable(r['message'])}" if r["message"] else "")
            )


def _printable(text: str, limit: int = 72) -> str:
    """A commit subject for the terminal: no control character (an escape sequence in a
    commit message must not reach the operator's terminal), at most `limit` characters."""
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
