"""HTML fragments of the deploy page. The page, the websocket push and the SSE stream all render
log lines and the status summary with the same named partials of deployments/detail.html, so a
line looks (and is escaped) the same however it reaches the browser."""

from __future__ import annotations

from django.template.loader import render_to_string

from deployments.models import Deploy

PAGE = "deployments/detail.html"


def log_line(seq: int, text: str) -> str:
    """One line, as the page shows it."""
    return render_to_string(f"{PAGE}#log-line", {"line": {"seq": seq, "text": text}})


def log_append(lines: list[dict]) -> str:
    """Lines to append to the page's log (an htmx out-of-band `beforeend` swap)."""
    return render_to_string(f"{PAGE}#log-append", {"lines": lines})


def summary(deploy: Deploy, can: dict[str, bool] | None = None) -> str:
    """The status, stages and facts box, replacing the page's (out-of-band swap). Reads
    deploy.app and deploy.image: call from sync code with both loaded. `can` is the viewer's
    apps.access.abilities (the Cancel button shows only with `deploy`)."""
    return render_to_string(f"{PAGE}#summary", {"deploy": deploy, "oob": True, "can": can or {}})
