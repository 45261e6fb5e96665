"""HTML fragments of the deploy page. The page, the websocket push and the SSE stream all render
log lines with log_lines and the status summary with the page's named partial, so a line looks
(and is escaped) the same however it reaches the browser."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from deployments.models import Deploy

PAGE = "deployments/detail.html"


# One line of the log, for the page (the `log_lines` filter), the websocket and the SSE
# stream alike. Not a template partial, nor format_html: a chatty build relays thousands of
# lines a second to every viewer, and the template engine took ~40 us a line, format_html
# ~8 us (each viewer's consumer competed with the build for the CPU). The text is escaped
# as the template engine escapes it (django.utils.html.escape is this html.escape); the seq
# is an int.
LINE = '<div class="ln" data-seq="%d">%s</div>'


def log_line(seq: int, text: str) -> SafeString:
    """One line, as the page shows it."""
    return _lines([(seq, text)])


def log_lines(lines: list[dict]) -> SafeString:
    return _lines((x["seq"], x["text"]) for x in lines)


def log_append(lines: list[dict]) -> SafeString:
    """Lines to append to the page's log (an htmx out-of-band `beforeend` swap)."""
    return _append(log_lines(lines))


def log_append_texts(first: int, texts: list[str]) -> SafeString:
    """log_append of consecutive lines, the first numbered `first` (a relayed batch)."""
    return _append(_lines(enumerate(texts, first)))


def _lines(numbered: Iterable[tuple[int, str]]) -> SafeString:
    """The one place a log line's text is escaped (and its seq held to an int)."""
    return mark_safe("".join([LINE % (int(seq), escape(str(text))) for seq, text in numbered]))  # noqa: S308


def _append(lines: SafeString) -> SafeString:
    return mark_safe(f'<div id="log" hx-swap-oob="beforeend">{lines}</div>')  # noqa: S308


def summary(deploy: Deploy, can: dict[str, bool] | None = None) -> str:
    """The status, stages and facts box, replacing the page's (out-of-band swap). Reads
    deploy.app and deploy.image: call from sync code with both loaded. `can` is the viewer's
    apps.access.abilities (the Cancel button shows only with `deploy`)."""
    return render_to_string(f"{PAGE}#summary", {"deploy": deploy, "oob": True, "can": can or {}})
