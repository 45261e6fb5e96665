"""Presentation of deploys: the per-stage timeline bar and durations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from django import template
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from deployments import fragments
from deployments.models import Deploy

register = template.Library()
# The deploy page's backlog, as the live paths send each line.
register.filter("log_lines", fragments.log_lines)


@dataclass
class Segment:
    name: str
    seconds: float
    state: str  # done, running, failed (the stage a failed deploy stopped in), stopped

    @property
    def grow(self) -> str:
        # flex-grow of the segment: widths proportional to durations. In hundredths of a
        # second, as an integer: grow values summing to less than 1 would leave the bar
        # partly empty, and a float could be rendered with a locale's comma.
        return str(max(round(self.seconds * 100), 1))

    @cached_property
    def took(self) -> str:
        """The duration as the bar's title and legend show it (both: formatted once)."""
        return duration(self.seconds)


def stage_segments(deploy: Deploy, now: datetime | None = None) -> list[Segment]:
    """The deploy's stages in the order they ran, each with its duration so far."""
    now = now or timezone.now()
    done = deploy.stage_seconds()
    end = deploy.finished if deploy.is_finished and deploy.finished else now
    out = []
    for name, s in sorted(deploy.stages.items(), key=lambda kv: kv[1].get("started", "")):
        if name in done:
            out.append(Segment(name, done[name], "done"))
        elif "started" in s:
            secs = max((end - datetime.fromisoformat(s["started"])).total_seconds(), 0.0)
            if not deploy.is_finished:
                state = "running"
            else:
                state = "failed" if deploy.status == Deploy.Status.FAILED else "stopped"
            out.append(Segment(name, round(secs, 2), state))
    return out


def bars(deploys: list[Deploy]) -> list[dict]:
    """The timeline of each of `deploys` (a page's history), scaled to the longest of them."""
    now = timezone.now()
    segments = [stage_segments(d, now) for d in deploys]
    longest = max((sum(s.seconds for s in segs) for segs in segments), default=0)
    return [bar(segs, longest) for segs in segments]


def bar(segments: list[Segment], longest: float | str = "") -> dict:
    """Segments and total of a deploy's timeline; with `longest` (the longest total in a
    list of deploys), also the bar's width in %, so deploys compare at a glance."""
    total = sum(s.seconds for s in segments)
    width = 100.0
    if longest:
        width = max(min(total / float(longest) * 100, 100.0), 6.0)
    return {"segments": segments, "total": total, "took": duration(total), "width": f"{width:.1f}"}


@register.simple_tag
def stage_bar(deploy: Deploy, longest: float | str = "") -> dict:
    """The deploy's timeline (bar()), for the deploy page."""
    return bar(stage_segments(deploy), longest)


@register.filter
def timeline(bar: dict) -> SafeString:
    """A bar() drawn: a segment per stage (width by duration, state as a class, name and
    duration as its title), then the legend and the total. Made with format_html (every value
    escaped) rather than a partial's loops: the app page draws one per deploy of its history."""
    segments = bar["segments"]
    if not segments:
        return SafeString("")
    spans = format_html_join(
        "",
        '<span class="st-{} {}" style="flex-grow:{}" title="{} {}{}"></span>',
        (
            (s.name, s.state, s.grow, s.name, s.took, "" if s.state == "done" else f" ({s.state})")
            for s in segments
        ),
    )
    legend = format_html_join(
        "",
        '<span class="stage" data-stage="{}"><i class="st-{} {}"></i>{} {}{}</span>',
        (
            (s.name, s.name, s.state, s.name, s.took, "…" if s.state == "running" else "")
            for s in segments
        ),
    )
    return format_html(
        '\n<div class="bar" role="img" aria-label="stage timeline" style="width:{}%">{}</div>'
        '\n<div class="legend">{}<span>total {}</span></div>\n',
        bar["width"],
        spans,
        legend,
        bar["took"],
    )


@register.filter
def duration(seconds) -> str:
    """12.3 -> '12.3s', 75 -> '1m 15s', 3720 -> '1h 2m'."""
    if seconds in (None, ""):
        return ""
    s = float(seconds)
    if s < 10:
        return f"{s:.1f}s"
    if s < 60:
        return f"{s:.0f}s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m}m {sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m}m"
