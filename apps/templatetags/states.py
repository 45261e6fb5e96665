"""An app's state (deployments.selectors.AppState) as the apps list and the app page show it:
its badge with the warnings, and its replica counts. Filters built with format_html (every
value escaped) rather than template partials: the list shows both for every app, and a
partial's include, loop and variables cost ~50 µs a row where these cost a few."""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from deployments.selectors import AppState

register = template.Library()

# Constant markup, no value in it.
UNKNOWN = mark_safe(
    '<span class="replicas muted" title="the Docker engine did not answer: replica counts '
    'unknown">?</span>'
)
NONE = mark_safe('<span class="replicas muted">-</span>')


@register.filter
def state_badge(st: AppState) -> SafeString:
    """`serving`, `down`, ... and a line per warning; the first links to the failed latest
    deploy when it is why the app is warned about."""
    out = format_html(
        '<span class="badge a-{}" data-state="{}">{}</span>', st.state_class, st.state, st.state
    )
    for i, warning in enumerate(st.warnings):
        shown = warning
        if i == 0 and st.latest_failed:
            shown = format_html('<a href="{}">{}</a>', _deploy_url(st.latest_id), warning)
        out += format_html('\n<div class="warn small" role="status">&#9888; {}</div>', shown)
    return out


@register.filter
def replicas(st: AppState) -> SafeString:
    """healthy/desired (a warning when short), `?` when the engine did not answer, `-` for an
    app that runs nothing and is asked to run nothing."""
    if st.replicas is None:
        return UNKNOWN
    if st.serving or st.desired:
        return format_html(
            '<span class="replicas{}" title="healthy / desired tasks in the Swarm">{}</span>',
            " warn" if st.replicas_short else "",
            st.replicas_label,
        )
    return NONE


def _deploy_url(pk: int | None) -> str:
    return reverse("deploy-detail", args=[pk])
