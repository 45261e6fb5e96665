"""A deploy's status moves here and only here: the model's guarded change, then (when it moved)
the relay to whoever watches the deploy, so the dashboard never shows a status the database
does not hold, nor misses one it does."""

from __future__ import annotations

from deployments import logstream
from deployments.models import Deploy

Status = Deploy.Status


def transition(
    deploy: Deploy,
    to: Deploy.Status,
    *,
    stage: str = "",
    reason: str = "",
    by: Deploy | None = None,
    log: logstream.DeployLog | None = None,
    line: str = "",
    queued_only: bool = False,
) -> bool:
    """Move `deploy` to `to` and relay it; False (and nothing relayed) when the guard refuses,
    e.g. a deploy that finished meanwhile (cancelled, swept) stays as it is.

    - `stage`: a stage of the pipeline starts (`to` is one of Deploy.PENDING);
    - `reason`: why it failed (FAILED), or why `by` supersedes it (SUPERSEDED, optional);
    - `by`: the deploy that supersedes it (SUPERSEDED): a newer queued one, or the live one
      when its commit is already live or older (then with a `reason`, see mark_superseded);
    - `line` for `log`: stored only when the status moved, and before viewers hear of the
      new status (a viewer's stream ends with the final status: nothing after it is shown);
    - `queued_only` (CANCELLED): only a deploy that has not started moves.
    """
    if stage:
        moved = deploy.start_stage(stage, to)
    elif to == Status.LIVE:
        moved = deploy.mark_live()
    elif to == Status.FAILED:
        moved = deploy.mark_failed(reason)
    elif to == Status.SUPERSEDED:
        if by is None:
            raise ValueError("a superseded deploy needs the deploy that supersedes it")
        moved = deploy.mark_superseded(by, reason)
    elif to == Status.CANCELLED:
        moved = deploy.mark_cancelled(queued_only=queued_only)
    elif to == Status.RETIRED:
        moved = deploy.mark_retired()
    else:
        raise ValueError(f"no transition to {to!r} without a stage")
    if moved:
        if log is not None and line:
            log(line)
        logstream.status_changed(deploy)
    return moved
