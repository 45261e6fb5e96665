"""HTML fragments of the deploy page. The page, the websocket push and the SSE stream all render
log lines with log_lines and the status summary with the page's named partial, so a line looks
(and is escaped) the same however it reaches the browser."""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join

from deployments.models import Deploy

PAGE = "deployments/detail.html"


# One line of the log, for the page (the `log_lines` filter), the websocket and the SSE
# stream alike. Not a template partial: a chatty build relays hundreds of lines a second, and
# the template engine took ~40 us a line (the viewer fell behind the build).
LINE = '<div class="ln" data-seq="{}">{}</div>'


def log_line(seq: int, text: str) -> str:
    """One line, as the page shows it."""
    return log_lines([{"seq": seq, "text": text}])


def log_lines(lines: list[dict]) -> str:
    return format_html_join("", LINE, ((int(x["seq"]), x["text"]) for x in lines))


def log_append(lines: list[dict]) -> str:
    """Lines to append to the page's log (an htmx out-of-band `beforeend` swap)."""
    return format_html('<div id="log" hx-swap-oob="beforeend">{}</div>', log_lines(lines))


def summary(deploy: Deploy, can: dict[str, bool] | None = None) -> str:
    """The status, stages and facts box, replacing the page's (out-of-band swap). Reads
    deploy.app and deploy.image: call from sync code with both loaded. `can` is the viewer's
    apps.access.abilities (the Cancel button shows only with `deploy`)."""
    return render_to_string(f"{PAGE}#summary", {"deploy": deploy, "oob": True, "can": can or {}})
