"""RQ jobs: an id in, one service call, one safety net."""

from __future__ import annotations

import logging

from deployments import services
from deployments.models import Deploy

log = logging.getLogger(__name__)


def run_deploy(deploy_id: int) -> str:
    try:
        return services.deploy_run(deploy_id=deploy_id).status
    except BaseException as exc:  # includes RQ's JobTimeoutException and SystemExit on kill
        deploy = Deploy.objects.filter(pk=deploy_id).first()
        if deploy is not None and deploy.mark_failed(
            f"internal error: {type(exc).__name__}: {exc}"
        ):
            from deployments import live

            live.DeployLog(deploy)(f"!! internal error: {type(exc).__name__}")
            live.status_changed(deploy)
        log.exception("deploy %s crashed", deploy_id)
        raise
