"""Which webhook deploy goes on when GitHub's deliveries arrive out of order: git decides.

A webhook never takes an app backwards (SPEC §4). CI runs finish in any order and deliveries
come late, so the order of arrival decides nothing: once the worker has cloned a webhook
deploy's commit (the webhook request itself never runs git), it is

- superseded by the live deploy when its commit is the live one or an ancestor of it;
- superseded by a newer queued webhook deploy whose commit descends from it (that one runs
  next and contains this one);
- otherwise built, also when a newer queued deploy carries an older commit: that one is
  superseded by this one, live by then, when its own turn comes.

A webhook deploy supersedes nothing when it is queued (deploy_create). Manual deploys,
redeploys and rollbacks are a user's choice: they keep superseding what was queued before
them, and they are not judged here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deployments import selectors
from deployments.boundaries import git
from deployments.models import Deploy


def superseded_by(
    *,
    deploy: Deploy,
    workspace: Path,
    auth: git.GitAuth | None,
    should_stop: Callable[[], bool],
    say: Callable[[str], None],
) -> tuple[Deploy, str] | None:
    """The deploy that makes webhook `deploy` (cloned in `workspace`) pointless and why, or
    None when it should be built. A comparison git cannot make (a commit the repository no
    longer has, after a force-push) is said in the log and does not stop the deploy."""
    if deploy.trigger not in Deploy.WEBHOOK_TRIGGERS or not deploy.commit:
        return None
    commit = deploy.commit

    def contains(tip: str) -> bool:
        try:
            return git.is_ancestor(workspace, commit, tip, auth=auth, should_stop=should_stop)
        except git.GitError as exc:
            say(f"could not compare {commit[:12]} with {tip[:12]} ({exc}); going on")
            return False

    live = selectors.live_deploy(deploy.app)
    if live is not None and live.commit:
        say(f"comparing {commit[:12]} with the live commit {live.commit[:12]}")
        if contains(live.commit):
            return live, (
                f"superseded by the live deploy #{live.pk}: commit {commit[:12]} is already "
                f"live or older than the live {live.commit[:12]}; a webhook never takes an "
                "app backwards"
            )
    newer = (
        deploy.app.deploys.filter(
            status=Deploy.Status.QUEUED, pk__gt=deploy.pk, trigger__in=Deploy.WEBHOOK_TRIGGERS
        )
        .exclude(commit__in=("", commit))
        .order_by("-pk")
    )
    for other in newer:
        if contains(other.commit):
            return other, (
                f"superseded by deploy #{other.pk}: its commit {other.commit[:12]} is newer "
                f"and contains {commit[:12]}"
            )
    return None
