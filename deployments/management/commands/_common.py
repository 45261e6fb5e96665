from __future__ import annotations

import time

from django.core.management.base import CommandError

from deployments.models import Deploy, LogLine


def follow(stdout, deploy: Deploy, *, poll: float = 0.5) -> Deploy:
    """Print the deploy's log as it grows until the deploy finishes."""
    seq = 0
    while True:
        deploy.refresh_from_db()  # first: a finished deploy's lines are all stored by now
        for line in LogLine.objects.filter(deploy=deploy, seq__gt=seq).order_by("seq"):
            stdout.write(line.text)
            seq = line.seq
        if deploy.is_finished:
            return deploy
        time.sleep(poll)


def finish(cmd, deploy: Deploy, wait: bool) -> None:
    cmd.stdout.write(f"deploy #{deploy.pk} {deploy.status}")
    if not wait:
        return
    deploy = follow(cmd.stdout, deploy)
    cmd.stdout.write(f"deploy #{deploy.pk} {deploy.status}")
    if deploy.status != Deploy.Status.LIVE:
        raise CommandError(f"deploy #{deploy.pk} ended {deploy.status}: {deploy.error}")
