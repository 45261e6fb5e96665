"""RQ jobs: an id in, one service call, one safety net."""

from __future__ import annotations

import logging

from deployments import logstream
from deployments.models import Deploy
from deployments.transitions import transition

log = logging.getLogger(__name__)


def run_deploy(deploy_id: int) -> str:
    try:
        # Imported in the job, which runs in RQ's work horse (a fork per job): the pipeline
        # brings the docker SDK and cryptography, which the worker's parent, enqueuing and
        # sweeping, never uses (BENCHMARKS.md, footprint).
        from deployments import pipeline

        return pipeline.deploy_run(deploy_id=deploy_id).status
    except BaseException as exc:  # includes RQ's JobTimeoutException and SystemExit on kill
        deploy = Deploy.objects.filter(pk=deploy_id).first()
        if deploy is not None:
            transition(
                deploy,
                Deploy.Status.FAILED,
                reason=f"internal error: {type(exc).__name__}: {exc}",
                log=logstream.DeployLog(deploy),
                line=f"!! internal error: {type(exc).__name__}",
            )
        log.exception("deploy %s crashed", deploy_id)
        raise
