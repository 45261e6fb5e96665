"""The rows of the apps list and of an app page's deploy history, made once per request.

The list shows every app (100 and more), the history 30 deploys: Django's template engine
costs a few µs a variable and node, and its `date` filter, `timesince`, `{% url %}` and the
localizing of a printed number 15-60 µs each on a small machine. So a row's links, numbers,
times and shortened texts are made here once: the history's as plain str that
templates/apps/detail.html prints (and escapes), the list's as whole cells built with
format_html (every value escaped; ~10 µs a cell where the template's nodes cost ~50), that
templates/apps/list.html puts in its table."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import Any, TypedDict, cast

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.timesince import timesince

from apps.models import App
from deployments import selectors
from deployments.models import Deploy
from deployments.selectors import AppState
from deployments.templatetags import deploys as timeline
from deployments.webhooks.models import WebhookDelivery


class Row(TypedDict):
    """One app of the list: its cells, made with format_html (every value escaped). The State
    and Replicas cells are apps/templatetags/states.py's, shared with the app page."""

    name: str
    app: SafeString  # the link to its page
    serving: SafeString  # the release that serves it: deploy, commit, subject, since when
    latest: SafeString  # its latest deploy: number and status, how long ago
    domains: SafeString  # the serving release's (the first a link to it), else the app's


class HistoryRow(TypedDict):
    id: str  # the deploy's number
    url: str  # its page
    status: str
    trigger: str
    source_id: str  # the deploy a redeploy or rollback re-applied ("" for a build)
    commit: str  # 7 characters ("" when not known yet)
    subject: str  # the commit subject, whole (the title)...
    subject_short: str  # ... and at most 72 characters
    author: str
    author_short: str  # at most 40 characters
    created_at: str  # stamp()
    created_ago: str
    promote_url: str  # "" unless a kept release other than the live one (selectors.promotable)
    error: str  # at most 300 characters; "" when superseded (its error only says so)
    bar: dict  # the stage timeline, deploys.bar(), scaled to the longest of the history


def stamp(when: datetime | None, tz: tzinfo) -> str:
    """`when` in the time zone `tz` (the current one) as "Y-m-d H:i:s": what
    `|date:'Y-m-d H:i:s'` writes, at a tenth of the cost; "" for None."""
    if when is None:
        return ""
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def ago(when: datetime | None, now: datetime) -> str:
    """What the `timesince` filter writes for `when`, measured from `now`; "" for None."""
    return timesince(when, now) if when else ""


def short(text: str, length: int) -> str:
    """What `|truncatechars:length` writes. Most texts are short ASCII, which it returns as
    they are: that case skips its Unicode normalization and translated ellipsis."""
    if len(text) <= length and text.isascii():
        return text
    return Truncator(text).chars(length)


def url_maker(name: str, stand_in: int | str) -> Callable[[int | str], str]:
    """reverse(name, args=[x]) for many x at the cost of one reverse() (~20 µs each, 3 per
    row): the URL of `stand_in`, cut around it. Only for URLs whose last part is their one
    argument and for arguments reverse() writes as they are: a deploy's number, an app's name
    (validators.APP_NAME_PATTERN, nothing to quote)."""
    head, _, tail = reverse(name, args=[stand_in]).rpartition(str(stand_in))
    return lambda arg: f"{head}{arg}{tail}"


def list_rows(
    apps: list[App], replicas: dict[str, tuple[int, int]] | None
) -> list[tuple[Row, AppState]]:
    """Each of selectors.app_rows() with its AppState (selectors.row_state)."""
    now, tz = timezone.now(), timezone.get_current_timezone()
    app_url, deploy_url = url_maker("app-detail", "stand-in"), url_maker("deploy-detail", 4242)
    out = []
    for app in apps:
        st = selectors.row_state(app, replicas)
        row: Row = {
            "name": app.name,
            "app": format_html('<a href="{}"><strong>{}</strong></a>', app_url(app.name), app.name),
            "serving": _serving(st, deploy_url, now, tz),
            "latest": _latest(app, st, deploy_url, now, tz),
            "domains": _domains(app, st),
        }
        out.append((row, st))
    return out


def _serving(st: AppState, deploy_url: Callable, now: datetime, tz: tzinfo) -> SafeString:
    s = st.serving
    if s is None:
        return mark_safe('<span class="muted">nothing</span>')
    out = format_html(
        '<a href="{}">#{}</a> <code>{}</code>', deploy_url(s.deploy_id), s.deploy_id, s.commit[:7]
    )
    if s.subject:
        out += format_html(
            ' <span class="subject" title="{}">{}</span>', s.subject, short(s.subject, 60)
        )
    if s.since:
        out += format_html(
            ' <span class="muted small" title="{} UTC">since {}</span>',
            stamp(s.since, tz),
            ago(s.since, now),
        )
    return out


def _latest(app: App, st: AppState, deploy_url: Callable, now: datetime, tz: tzinfo) -> SafeString:
    if not st.latest_id:
        return mark_safe('<span class="muted">never deployed</span>')
    created = cast(Any, app).last_created  # an annotation of app_rows; the stubs cannot see it
    return format_html(
        '<a href="{}" class="badge s-{}">#{} {}</a> <span class="muted small" title="{} UTC">'
        "{} ago</span>",
        deploy_url(st.latest_id),
        st.latest_status,
        st.latest_id,
        st.latest_status,
        stamp(created, tz),
        ago(created, now),
    )


def _domains(app: App, st: AppState) -> SafeString:
    if st.url and st.serving is not None:  # a URL: the serving release routes a domain
        first, *more = st.serving.domains
        out = format_html(
            '<a href="{}" class="app-link" rel="noopener noreferrer" target="_blank">'
            "<code>{}</code></a>",
            st.url,
            first,
        )
        return out + format_html_join("", ", <code>{}</code>", ((d,) for d in more))
    if not app.domains:
        return mark_safe('<span class="muted">-</span>')
    return format_html_join(", ", "<code>{}</code>", ((d,) for d in app.domains))


def history_rows(app: App, deploys: list[Deploy], promotable: set[int]) -> list[HistoryRow]:
    """The app page's deploy history: `deploys` as selectors.app_overview() gives them."""
    now, tz = timezone.now(), timezone.get_current_timezone()
    return [
        _history_row(app, d, d.pk in promotable, bar, now, tz)
        for d, bar in zip(deploys, timeline.bars(deploys), strict=True)
    ]


def _history_row(
    app: App, d: Deploy, promote: bool, bar: dict, now: datetime, tz: tzinfo
) -> HistoryRow:
    subject, author = d.commit_subject, d.commit_author
    superseded = d.status == Deploy.Status.SUPERSEDED
    return {
        "id": str(d.pk),
        "url": reverse("deploy-detail", args=[d.pk]),
        "status": d.status,
        "trigger": d.trigger,
        "source_id": str(d.source_id or ""),
        "commit": d.commit[:7],
        "subject": subject,
        "subject_short": short(subject, 72),
        "author": author,
        "author_short": short(author, 40),
        "created_at": stamp(d.created, tz),
        "created_ago": ago(d.created, now),
        "promote_url": reverse("app-promote", args=[app.name, d.pk]) if promote else "",
        "error": short(d.error, 300) if not superseded else "",
        "bar": bar,
    }


def delivery_rows(deliveries: Iterable[WebhookDelivery]) -> list[dict[str, str]]:
    """The app page's webhook deliveries, newest first, as the table prints them."""
    now, tz = timezone.now(), timezone.get_current_timezone()
    deploy_url = url_maker("deploy-detail", 4242)
    return [
        {
            "received_at": stamp(w.received, tz),
            "received_ago": ago(w.received, now),
            "event": w.event or "-",
            "outcome": w.outcome,
            "deploy_id": str(w.deploy_id or ""),
            "deploy_url": deploy_url(w.deploy_id) if w.deploy_id else "",
            "reason": w.reason or "-",
            "commit": w.commit[:7],
        }
        for w in deliveries
    ]
