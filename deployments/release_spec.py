"""What a build records and a redeploy or rollback re-applies: the release's pinned image and its
runtime config (never a secret value), stored as JSON in `Deploy.spec`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, TypedDict


class HealthcheckSpec(TypedDict, total=False):
    """`run.healthcheck` of the manifest, validated: exactly one of `path` and `cmd`."""

    path: str
    cmd: str
    interval: int
    timeout: int
    retries: int
    start_period: int


@dataclass(frozen=True)
class ReleaseSpec:
    image: str = ""  # <registry>/<app>@sha256:...: every node runs the very same bytes
    entrypoint: list[str] = field(default_factory=list)  # the image's own ENTRYPOINT
    cmd: list[str] = field(default_factory=list)  # and CMD, which Koyra's wrapper runs
    env: dict[str, str] = field(default_factory=dict)  # the manifest's + the app's (set_env)
    manifest_env: dict[str, str] = field(default_factory=dict)  # the manifest's alone
    secrets: list[str] = field(default_factory=list)  # names only
    predeploy: list[str] = field(default_factory=list)
    port: int = 8000
    replicas: int = 1
    healthcheck: HealthcheckSpec | None = None
    domains: list[str] = field(default_factory=list)  # app's domains + the manifest's
    manifest_domains: list[str] = field(default_factory=list)  # the manifest's alone
    memory: int | None = None
    nano_cpus: int | None = None
    constraints: list[str] = field(default_factory=list)  # Swarm placement (run.constraints)
    # Koyra's start wrapper (secrets, predeploy, drain) needs a shell in the image.
    shell: bool = True
    # The service labels applied, for the audit (the deploy id left out).
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReleaseSpec:
        """Rows written before this class existed load too: unknown keys are ignored and
        `manifest_domains` and `manifest_env`, missing in the oldest rows, fall back to
        `domains` and `env` (no app had env vars of its own then)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("manifest_domains", list(data.get("domains") or []))
        values.setdefault("manifest_env", dict(data.get("env") or {}))
        return cls(**values)

    def with_domains(self, app_domains: list[str]) -> ReleaseSpec:
        """This release routed with the app's current domains (set since it was built)."""
        merged = list(dict.fromkeys([*app_domains, *self.manifest_domains]))
        return replace(self, domains=merged)

    def with_env(self, app_env: dict[str, str]) -> ReleaseSpec:
        """This release with the app's current plain env vars merged over its manifest's
        `env` (a redeploy or rollback applies today's values, as it does with secrets)."""
        return replace(self, env={**self.manifest_env, **app_env})

    def with_labels(self, labels: dict[str, str]) -> ReleaseSpec:
        return replace(self, labels=dict(labels))
