"""The Swarm services Koyra asks for (SPEC §5), as pure functions from a release spec to an
`engine.ServiceSpec`: labels, Traefik routing, the start wrapper (secrets, predeploy, drain),
the healthcheck and the stability window, and the one-off release job. Nothing here talks to the
engine; the pipeline applies what these build."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.models import App
from apps.validators import validate_domain, validate_secret_key
from deployments.boundaries import engine, registry
from deployments.release_spec import ReleaseSpec

SECRETS_DIR = "/run/secrets"


@dataclass(frozen=True)
class SecretRef:
    """One Swarm secret a task mounts: its id and name in the Swarm, the file under
    /run/secrets and the environment variable the wrapper exports it as."""

    id: str
    name: str
    file: str
    key: str

    def mount(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "file": self.file}


def secret_exports(secret_refs: list[SecretRef]) -> list[str]:
    """Shell lines that export each secret from its Swarm-mounted tmpfs file, exactly: `$(...)`
    strips trailing newlines (a PEM key ends with one), so the file is read with a sentinel
    `x` after it, which is then removed."""
    lines = []
    for ref in secret_refs:
        validate_secret_key(ref.key)  # it is written into a shell line
        path = shlex.quote(f"{SECRETS_DIR}/{ref.file}")
        lines.append(
            f'{ref.key}="$(cat {path} && printf x)" || exit 1; '
            f'{ref.key}="${{{ref.key}%x}}"; export {ref.key}'
        )
    return lines


def start_script(spec: ReleaseSpec, secret_refs: list[SecretRef]) -> str:
    """The wrapper every task starts with: export secrets from Swarm's tmpfs files, run the
    predeploy steps, then the image's own ENTRYPOINT+CMD ("$@"). On TERM it keeps serving for
    a drain period first, so Traefik (which polls the Swarm) stops sending it requests."""
    lines = [
        "koyra_pid=",
        f"koyra_term() {{ sleep {settings.KOYRA_DRAIN_SECONDS}; "
        '[ -n "$koyra_pid" ] && kill -TERM "$koyra_pid" 2>/dev/null; }',
        "trap koyra_term TERM INT",
    ]
    lines += secret_exports(secret_refs)
    for step in spec.predeploy:
        lines.append(f"echo {shlex.quote('koyra predeploy: ' + step)}")
        lines.append(f"( {step} ) || {{ echo 'koyra predeploy failed: exit '$?; exit 1; }}")
    lines += [
        '[ "$#" -gt 0 ] || { echo "koyra: the image has no ENTRYPOINT or CMD"; exit 1; }',
        '"$@" &',
        "koyra_pid=$!",
        'while :; do wait "$koyra_pid"; s=$?; kill -0 "$koyra_pid" 2>/dev/null || exit "$s"; done',
    ]
    return "\n".join(lines)


def healthcheck(spec: ReleaseSpec) -> dict[str, Any] | None:
    hc = spec.healthcheck
    if not hc:
        return None
    if "path" in hc:
        url = shlex.quote(f"http://127.0.0.1:{spec.port}{hc['path']}")
        test = f"wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url}"
    else:
        test = hc["cmd"]
    return {
        "test": ["CMD-SHELL", test],
        "interval": hc["interval"],
        "timeout": hc["timeout"],
        "retries": hc["retries"],
        "start_period": hc["start_period"],
    }


def monitor_seconds() -> int:
    """Swarm's `monitor`: how long after an updated task became healthy (running) its crash
    still fails the update and makes Swarm roll back (KOYRA_ROLLOUT_STABILITY_SECONDS).

    It need not cover the healthcheck: swarmkit counts a new task that fails before it is
    running (never healthy, or it exits first) as a failed update whatever the window. Swarm
    waits one window after the last task before it calls the update completed, and only then
    does the deploy turn live (rollout.py, which also catches a task of the new version that
    fails outside the window), so the window is paid once per rollout: a window derived from
    the healthcheck cost ~34 s of every push with Koyra's default one (issue 16)."""
    return settings.KOYRA_ROLLOUT_STABILITY_SECONDS


def traefik_labels(*, app: App, spec: ReleaseSpec) -> dict[str, str]:
    """The app's Traefik router. Every domain is checked again here, whatever stored it: a
    backtick in one would end `Host(`...`)` early and make the rule match every host."""
    if not spec.domains:
        return {}
    for d in spec.domains:
        validate_domain(d)
    r = f"traefik.http.routers.{app.name}"
    labels = {
        "traefik.enable": "true",
        f"{r}.rule": " || ".join(f"Host(`{d}`)" for d in spec.domains),
        f"traefik.http.services.{app.name}.loadbalancer.server.port": str(spec.port),
        "traefik.swarm.network": settings.KOYRA_NETWORK,
        # Traefik polls the Swarm: a request that meets a task just stopping is retried on
        # another one instead of failing.
        f"traefik.http.middlewares.{app.name}-retry.retry.attempts": "3",
        f"{r}.middlewares": f"{app.name}-retry@swarm",
    }
    if settings.KOYRA_ACME_EMAIL:
        labels[f"{r}.entrypoints"] = "websecure"
        labels[f"{r}.tls.certresolver"] = "le"
    else:
        labels[f"{r}.entrypoints"] = "web"
    return labels


def service_labels(*, app: App, deploy_id: int, spec: ReleaseSpec) -> dict[str, str]:
    return {
        "koyra.app": app.name,
        "koyra.deploy": str(deploy_id),
        "com.docker.stack.namespace": app.name,
        **traefik_labels(app=app, spec=spec),
    }


def service_spec(
    *, app: App, deploy_id: int, spec: ReleaseSpec, secret_refs: list[SecretRef]
) -> engine.ServiceSpec:
    """The app's service `<app>_web` running this release."""
    hc = healthcheck(spec)
    command = args = None
    if spec.shell and (spec.predeploy or secret_refs or settings.KOYRA_DRAIN_SECONDS):
        command = ["/bin/sh", "-c", start_script(spec, secret_refs)]
        args = ["koyra-start", *spec.entrypoint, *spec.cmd]
    return engine.ServiceSpec(
        name=app.service_name,
        image=spec.image,
        labels=service_labels(app=app, deploy_id=deploy_id, spec=spec),
        container_labels={"koyra.app": app.name, "koyra.deploy": str(deploy_id)},
        command=command,
        args=args,
        env=dict(spec.env),
        networks=[settings.KOYRA_NETWORK],
        replicas=spec.replicas,
        constraints=list(spec.constraints),
        spread=["node.id"],  # replicas across the nodes: one node going away leaves the rest
        memory=spec.memory,
        nano_cpus=spec.nano_cpus,
        healthcheck=hc,
        monitor=monitor_seconds(),
        stop_grace=settings.KOYRA_DRAIN_SECONDS + 10,
        secrets=[r.mount() for r in secret_refs],
        registry_auth=registry.credentials(),  # the nodes pull with Koyra's login
    )


def release_job_spec(
    *, app: App, deploy_id: int, spec: ReleaseSpec, steps: list[str], secret_refs: list[SecretRef]
) -> engine.ServiceSpec:
    """The one-off Swarm job that runs the release steps once, in the new image, on the app's
    network, with the runtime env and the secrets mounted like the app's own tasks."""
    script = "\n".join(
        [*secret_exports(secret_refs), "set -e"]
        + [f"echo {shlex.quote('$ ' + s)}\n{s}" for s in steps]
    )
    return engine.ServiceSpec(
        name=f"{app.name}_release",
        image=spec.image,
        labels={"koyra.app": app.name, "koyra.deploy": str(deploy_id), "koyra.role": "release"},
        container_labels={"koyra.app": app.name, "koyra.role": "release"},
        command=["/bin/sh", "-c", script],
        args=[],
        env=dict(spec.env),
        networks=[settings.KOYRA_NETWORK],
        memory=spec.memory,
        nano_cpus=spec.nano_cpus,
        secrets=[r.mount() for r in secret_refs],
        registry_auth=registry.credentials(),
    )
