"""Presentation of deploys: the per-stage timeline bar and durations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import template
from django.utils import timezone

from deployments.models import Deploy

register = template.Library()


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


def total_seconds(deploy: Deploy) -> float:
    return sum(s.seconds for s in stage_segments(deploy))


@register.simple_tag
def stage_bar(deploy: Deploy, longest: float | str = "") -> dict:
    """Segments and total of the deploy's timeline; with `longest` (the longest total in a
    list of deploys), also the bar's width in %, so deploys compare at a glance."""
    segments = stage_segments(deploy)
    total = sum(s.seconds for s in segments)
    width = 100.0
    if longest:
        width = max(min(total / float(longest) * 100, 100.0), 6.0)
    return {"segments": segments, "total": total, "width": f"{width:.1f}"}


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
