"""One deploy, top-down: clone -> manifest -> build -> push -> release -> rollout -> live.

A build (push, workflow_run, manual) walks the whole way; a redeploy or rollback re-applies a
recorded release (`ReleaseSpec`) from the rollout on. Each stage moves the deploy's status
through `transitions`; any failure ends it `failed` with a reason fit for the user, and leaves
the running service as it was.
"""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import close_old_connections, transaction

from apps import services as app_services
from apps.models import App
from apps.validators import reserved_hosts, validate_repo_url
from deployments import (
    checkout,
    commits,
    heartbeat,
    logstream,
    ordering,
    retention,
    rollout,
    selectors,
    swarm_secrets,
    swarm_spec,
)
from deployments import manifest as manifest_mod
from deployments.boundaries import engine, git, registry
from deployments.models import Deploy, Image
from deployments.release_spec import ReleaseSpec
from deployments.transitions import transition
from secrets_vault import crypto, repo_access
from secrets_vault import services as vault

Status = Deploy.Status
CANCELLED_BY_USER = "cancelled by a user"


class DeployFailed(Exception):
    """The deploy cannot go on; str() is the reason shown to the user."""


class DeployStopped(Exception):
    """Cancelled by a user or out of time."""


class DeploySuperseded(Exception):
    """Its clone showed it stale (ordering.py); the status says so already."""


def deploy_run(*, deploy_id: int) -> Deploy:
    """Run one queued deploy to its end (what the worker's job calls)."""
    deploy = Deploy.objects.select_related("app").get(pk=deploy_id)
    if deploy.status != Status.QUEUED:
        return deploy  # superseded or cancelled while it waited
    queued = deploy.app.deploys.filter(status=Status.QUEUED, pk__gt=deploy.pk)
    if deploy.trigger in Deploy.WEBHOOK_TRIGGERS:  # a newer one may carry an older commit:
        queued = queued.exclude(trigger__in=Deploy.WEBHOOK_TRIGGERS)  # git decides (ordering)
    newer = queued.first()
    if newer is not None:
        transition(deploy, Status.SUPERSEDED, by=newer)
        return deploy
    with heartbeat.Heartbeat(deploy.pk):
        return _Pipeline(deploy).run()


class _Pipeline:
    def __init__(self, deploy: Deploy) -> None:
        self.deploy = deploy
        self.app = deploy.app
        self.log = logstream.DeployLog(deploy)
        self.deadline = time.monotonic() + settings.KOYRA_DEPLOY_TIMEOUT
        self.workspace = Path(settings.KOYRA_WORKSPACE_DIR) / f"deploy-{deploy.pk}"
        # Every secret of the app, decrypted once per run (_read_secrets): the values this
        # deploy applies, and what the log redacts. One set meanwhile applies to the next.
        self.secrets: dict[str, str] = {}
        # The app's repository credentials, decrypted once by _clone; redacted like secrets.
        self.auth = git.GitAuth(app=self.app.name)
        self.created_service = False
        self._last_check = 0.0
        self._stop_reason = ""

    def run(self) -> Deploy:
        try:
            build = self.deploy.trigger in Deploy.BUILD_TRIGGERS
            self._rollout(self._build() if build else self._reuse())
        except DeployStopped as exc:
            self._give_up(str(exc), cancelled=self._stop_reason == CANCELLED_BY_USER)
        except DeploySuperseded:
            pass
        except (
            DeployFailed,
            rollout.RolloutFailed,
            manifest_mod.ManifestError,
            checkout.CheckoutError,
            git.GitError,
            engine.EngineError,
            registry.RegistryError,
            crypto.VaultError,
        ) as exc:
            if self._stop_reason:
                self._give_up(self._stop_reason, cancelled=self._stop_reason == CANCELLED_BY_USER)
            else:
                self._give_up(str(exc))
        except ValidationError as exc:
            self._give_up(" ".join(exc.messages))
        finally:
            shutil.rmtree(self.workspace, ignore_errors=True)
        self.deploy.refresh_from_db()
        return self.deploy

    # -- control: stages, stop requests, the end ------------------------------------------

    def should_stop(self) -> bool:
        """Polled from the engine's watcher threads too: a cancel or the deadline stops the
        build, the push, the release job and the rollout wait."""
        if self._stop_reason:
            return True
        if time.monotonic() > self.deadline:
            self._stop_reason = (
                f"timed out after {settings.KOYRA_DEPLOY_TIMEOUT}s (KOYRA_DEPLOY_TIMEOUT)"
            )
            return True
        now = time.monotonic()
        if now - self._last_check > 1:
            self._last_check = now
            try:
                if Deploy.objects.filter(pk=self.deploy.pk, cancel_requested=True).exists():
                    self._stop_reason = CANCELLED_BY_USER
            finally:
                close_old_connections()
        return bool(self._stop_reason)

    def _stage(self, name: str, status: Deploy.Status) -> None:
        if self.should_stop():
            raise DeployStopped(self._stop_reason)
        if not transition(self.deploy, status, stage=name):
            raise DeployStopped(self.deploy.error or f"deploy is {self.deploy.status}")
        self.log(f"==> {name}")

    def _give_up(self, reason: str, *, cancelled: bool = False) -> None:
        reason = self.log.redact(reason)
        self.log(f"!! {reason}")
        if cancelled:
            transition(self.deploy, Status.CANCELLED)
        else:
            transition(self.deploy, Status.FAILED, reason=reason)

    # -- secrets: read once ----------------------------------------------------------------

    def _read_secrets(self, keys: list[str]) -> None:
        """Before anything is built or applied: every secret decrypts (fail closed), the ones
        the release names have a value, and the log redacts every value of the app."""
        self.secrets = vault.secret_values(app=self.app)
        self.log.redact = logstream.Redactor(
            [*self.secrets.values(), self.auth.ssh_key, self.auth.token]
        )
        vault.secrets_require(app=self.app, keys=keys, present=self.secrets)

    def _secret_refs(self, keys: list[str]) -> list[swarm_spec.SecretRef]:
        vault.secrets_require(app=self.app, keys=keys, present=self.secrets)
        return [
            swarm_secrets.swarm_secret_ensure(app=self.app, key=k, value=self.secrets[k])
            for k in sorted(set(keys))
        ]

    def _app_env(self, secret_names: list[str]) -> None:
        """The app's plain env vars (set_env) go over the manifest's `env`; a name the
        manifest lists as a secret is refused, not silently shadowed either way."""
        clash = sorted(set(self.app.env) & set(secret_names))
        if clash:
            raise DeployFailed(
                f"{clash[0]} is a secret in .paas/app.yaml and also a plain env var of "
                f"{self.app.name}; a name is one or the other: remove the env var "
                f"(unset_env {self.app.name} {clash[0]}, or the app's settings page)"
            )
        if self.app.env:
            self.log(f"app env vars (over the manifest's env): {', '.join(sorted(self.app.env))}")

    # -- a build: clone, manifest, build, push, release -------------------------------------

    def _build(self) -> ReleaseSpec:
        self._clone()
        m = manifest_mod.load(self.workspace)
        self.log(f"manifest: {'.paas/app.yaml' if m.present else 'none, using the defaults'}")
        Deploy.objects.filter(pk=self.deploy.pk).update(manifest_secrets=m.secrets)
        self._app_env(m.secrets)
        self._read_secrets(m.secrets)
        ref = self._build_image(m)
        image = self._push(ref)
        spec = self._release_spec(m, image)
        _check_shell(spec, release=bool(m.release))
        _check_domains(self.app, spec.domains)
        if m.release:
            self._release(spec, m.release)
        return spec

    def _clone(self) -> None:
        d, app = self.deploy, self.app
        self._stage("clone", Status.BUILDING)
        validate_repo_url(app.repo_url)  # again: settings may have changed since creation
        self.auth = repo_access.repo_auth(app=app)
        self.log.redact = logstream.Redactor([self.auth.ssh_key, self.auth.token])
        if not d.commit:
            d.commit = git.resolve(app.repo_url, app.branch, auth=self.auth)
            Deploy.objects.filter(pk=d.pk).update(commit=d.commit)
        self.log(f"cloning {app.repo_url} at {d.commit}")
        git.clone_at(
            app.repo_url, d.commit, self.workspace, should_stop=self.should_stop, auth=self.auth
        )
        commits.commit_record(deploy=d, workspace=self.workspace, say=self.log)
        d.finish_stage("clone")
        # A webhook's commit that is live already, or older, or in a newer queued deploy.
        stale = ordering.superseded_by(
            deploy=d,
            workspace=self.workspace,
            auth=self.auth,
            should_stop=self.should_stop,
            say=self.log,
        )
        if stale and transition(
            d, Status.SUPERSEDED, by=stale[0], reason=stale[1], log=self.log, line=stale[1]
        ):
            raise DeploySuperseded(stale[1])

    def _build_image(self, m: manifest_mod.Manifest) -> str:
        d, app = self.deploy, self.app
        self._stage("build", Status.BUILDING)
        # The repository is untrusted: the context, its Dockerfile and .dockerignore (which
        # docker-py opens by name) must be real files inside the checkout.
        context, dockerfile = checkout.build_files(self.workspace, m.context, m.dockerfile)
        if not (context / dockerfile).is_file():
            raise DeployFailed(
                f"No Dockerfile at {m.context}/{m.dockerfile} in {d.short_commit}: add one, or "
                "set build.dockerfile in .paas/app.yaml"
            )
        # The engine's local images are shared by every build on it, and a Dockerfile may name
        # any of them (FROM, COPY --from): a tag another tenant could guess (a public commit)
        # would hand them this app's image. So the tag carries 64 random bits as well.
        ref = f"{settings.KOYRA_REGISTRY}/{app.name}:{d.commit}-{secrets.token_hex(8)}"
        args = m.build_args({**m.env, **app.env})
        if args:
            self.log(f"build args: {', '.join(sorted(args))}")
        # No labels: the classic builder would commit one more step for them, on every push
        # (the deploy records app and commit; nothing reads them from the image).
        with self.log.batched():
            engine.build(
                context=str(context),
                dockerfile=dockerfile,
                tag=ref,
                buildargs=args,
                on_line=self.log,
                on_quiet=self.log.flush,
                should_stop=self.should_stop,
            )
        d.finish_stage("build")
        return ref

    def _push(self, ref: str) -> Image:
        d = self.deploy
        self._stage("push", Status.PUSHING)
        try:
            registry.wait_ready(settings.KOYRA_REGISTRY_WAIT_SECONDS, on_wait=self.log)
        except registry.RegistryError as exc:
            raise DeployFailed(f"push to the registry failed: {exc}") from None
        with self.log.batched():
            digest = engine.push(
                ref=ref, on_line=self.log, on_quiet=self.log.flush, auth=registry.credentials()
            )
        info = engine.image_inspect(ref)
        image = Image.objects.create(
            app=self.app, ref=ref, digest=digest, commit=d.commit, size=info.get("Size") or 0
        )
        Deploy.objects.filter(pk=d.pk).update(image=image)
        d.image = image
        self.log(f"pushed {image.pinned}")
        d.finish_stage("push")
        return image

    def _release_spec(self, m: manifest_mod.Manifest, image: Image) -> ReleaseSpec:
        entrypoint, cmd = engine.image_command(image.ref)
        return ReleaseSpec(
            image=image.pinned,
            entrypoint=entrypoint,
            cmd=cmd,
            env={**m.env, **self.app.env},
            manifest_env=m.env,
            secrets=m.secrets,
            predeploy=m.predeploy,
            port=m.port,
            replicas=m.replicas,
            healthcheck=m.healthcheck,
            domains=list(dict.fromkeys([*self.app.domains, *m.domains])),
            manifest_domains=m.domains,
            memory=m.memory,
            nano_cpus=m.nano_cpus,
            constraints=m.constraints,
            shell=engine.image_has(image.ref, "/bin/sh"),
        )

    def _release(self, spec: ReleaseSpec, steps: list[str]) -> None:
        """Once per deploy, before any task is replaced: a Swarm job of the new image."""
        self._stage("release", Status.RELEASING)
        job = swarm_spec.release_job_spec(
            app=self.app,
            deploy_id=self.deploy.pk,
            spec=spec,
            steps=steps,
            secret_refs=self._secret_refs(spec.secrets),
        )
        with self.log.batched():
            code = engine.run_job(
                job,
                on_line=self.log,
                on_quiet=self.log.flush,
                should_stop=self.should_stop,
                timeout=max(1.0, self.deadline - time.monotonic()),
            )
        if code != 0:
            raise DeployFailed(
                f"release step failed with exit code {code}; the service was not changed"
            )
        self.deploy.finish_stage("release")

    # -- a redeploy or rollback: the recorded release, no build ------------------------------

    def _reuse(self) -> ReleaseSpec:
        d, source = self.deploy, self.deploy.source
        if source is None or not source.spec or source.image is None:
            raise DeployFailed("nothing to re-apply: the source deploy recorded no spec")
        self.log(f"re-using the image of deploy #{source.pk}: {source.image.pinned} (no build)")
        Deploy.objects.filter(pk=d.pk).update(image=source.image, commit=source.commit)
        d.image, d.commit = source.image, source.commit
        # The release's own config, with the app's current routing (domains set since).
        # and its current plain env vars (set_env since), as with secrets: today's values.
        spec = ReleaseSpec.from_json(source.spec).with_domains(self.app.domains)
        spec = spec.with_env(self.app.env)
        self._app_env(spec.secrets)
        self._read_secrets(spec.secrets)
        _check_domains(self.app, spec.domains)
        return spec

    # -- rollout: the service runs the release, health-gated -------------------------------

    def _rollout(self, spec: ReleaseSpec) -> None:
        d, app = self.deploy, self.app
        self._stage("rollout", Status.DEPLOYING)
        previous = selectors.live_deploy(app)
        svc = swarm_spec.service_spec(
            app=app, deploy_id=d.pk, spec=spec, secret_refs=self._secret_refs(spec.secrets)
        )
        # The record a rollback re-applies, labels included for the audit; never values.
        spec = spec.with_labels({k: v for k, v in svc.labels.items() if k != "koyra.deploy"})
        Deploy.objects.filter(pk=d.pk).update(spec=spec.to_json())
        self.created_service = engine.service_get(svc.name) is None
        self.log(f"updating service {svc.name} to {spec.image}")
        engine.service_apply(svc, force=True)
        rollout.Rollout(
            app=app,
            deploy_id=d.pk,
            spec=spec,
            previous=previous,
            created=self.created_service,
            log=self.log,
            should_stop=self.should_stop,
            secret_refs=self._secret_refs,
        ).wait()
        d.finish_stage("rollout")
        self._go_live(digest=spec.image.rsplit("@", 1)[-1])
        swarm_secrets.swarm_secrets_prune(app=app)
        self._retention()

    def _go_live(self, *, digest: str) -> None:
        """The one live deploy of the app: the previous one retires in the same transaction."""
        d = self.deploy
        with transaction.atomic():
            for old in self.app.deploys.filter(status=Status.LIVE).exclude(pk=d.pk):
                transition(old, Status.RETIRED)
            line = f"live: every task runs {digest[:19]}"
            if not transition(d, Status.LIVE, log=self.log, line=line):
                raise DeployStopped(d.error or "deploy was stopped")

    def _retention(self) -> None:
        """Old images leave the registry once a newer release is live; a failure here is
        logged, never turns a live deploy into a failed one."""
        try:
            for image in retention.retention_apply(app=self.app, say=lambda s: None):
                self.log(f"retention: removed {image.ref}")
        except (registry.RegistryError, engine.EngineError) as exc:
            self.log(f"retention skipped: {exc}")


def _check_domains(app: App, domains: list[str]) -> None:
    """A host name routes to one app: Traefik would split its traffic between two routers."""
    claimed = app_services.app_domain_owners(exclude=app.name)
    claimed.update(selectors.domains_live_elsewhere(app))
    for host in domains:
        if host in reserved_hosts():
            raise DeployFailed(
                f"domain {host} is Koyra's own host name (KOYRA_BASE_URL or ALLOWED_HOSTS) and "
                "cannot route to an app: remove it from run.domains in .paas/app.yaml"
            )
        if host in claimed:
            raise DeployFailed(
                f"domain {host} already routes to the app {claimed[host]!r}; one host name "
                "can serve one app (check run.domains in .paas/app.yaml and the app's domains)"
            )


def _check_shell(spec: ReleaseSpec, *, release: bool) -> None:
    if spec.shell:
        return
    needs = [
        what
        for what, used in (
            ("secrets", spec.secrets),
            ("predeploy steps", spec.predeploy),
            ("release steps", release),
        )
        if used
    ]
    if needs:
        raise DeployFailed(
            f"The image has no /bin/sh, which Koyra needs to run {' and '.join(needs)}: add "
            "a shell to the image (e.g. a busybox or distro base), or remove them from "
            ".paas/app.yaml"
        )
