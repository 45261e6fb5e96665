"""Why a release never became healthy, in the user's words: the check of `run.healthcheck`
(the path or command they wrote) and what its last probe printed, rather than Swarm's
"dockerexec: unhealthy container" (issue 15)."""

from __future__ import annotations

from typing import Any

from deployments.release_spec import ReleaseSpec

MAX_OUTPUT = 300
# Koyra's path check is `wget ... || curl ...` (swarm_spec.healthcheck): the fallback's own
# complaint about a missing tool says nothing about the app.
_TOOL_MISSING = (": wget: not found", ": curl: not found")


def check_named(spec: ReleaseSpec) -> str:
    """The check as the manifest gave it: `GET /healthz on port 8000` or the command."""
    hc = spec.healthcheck or {}
    if "path" in hc:
        return f"GET {hc['path']} on port {spec.port}"
    return f"command `{hc.get('cmd', '')}`"


def probe_output(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.endswith(_TOOL_MISSING)]
    text = " / ".join(lines)
    return text if len(text) <= MAX_OUTPUT else text[: MAX_OUTPUT - 1] + "…"


def unhealthy_reason(spec: ReleaseSpec, probes: list[dict[str, Any]]) -> str:
    """ "" unless a task of the release failed its healthcheck (engine.task_probes, newest
    first: a container the engine marked unhealthy); then the check and the last failing
    probe's exit code and output."""
    if not spec.healthcheck:
        return ""
    # Only a container the engine itself calls unhealthy failed its check: a probe that failed
    # because the app was exiting (killed, 137) belongs to a crash, which Swarm's own task
    # error explains better.
    failing = [
        p for p in probes if p.get("status") == "unhealthy" and p.get("exit") not in (0, None)
    ]
    if not failing:
        return ""
    last = failing[0]
    said = probe_output(last.get("output", "")) or "no output"
    # A path check's exit code is the fallback's (`|| curl`: 127 where curl is missing), not
    # the app's: its output says what the app answered.
    how = "said" if "path" in spec.healthcheck else f"exited {last['exit']}"
    return f"the healthcheck ({check_named(spec)}) did not pass: its last probe {how}: {said}"
