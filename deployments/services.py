"""Deploy workflows: create and enqueue, run the pipeline, cancel, redeploy, sweep."""

from __future__ import annotations

import hashlib
import hmac
import logging
import shlex
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import close_old_connections, transaction
from django.utils import timezone

from apps import manifest as manifest_mod
from apps import services as app_services
from apps.models import App
from apps.validators import validate_commit, validate_repo_url
from deployments import engine, git, live
from deployments.models import Deploy, Image
from secrets_vault import crypto
from secrets_vault import services as vault

log = logging.getLogger(__name__)

BUILD_TRIGGERS = ("push", "workflow_run", "manual")
SECRETS_DIR = "/run/secrets"


class DeployFailed(Exception):
    """The deploy cannot go on; str() is the reason shown to the user."""


class DeployStopped(Exception):
    """Cancelled by a user or out of time."""


# --- Creating and queueing ------------------------------------------------------------------


def deploy_create(
    *, app: App, commit: str = "", trigger: str = "manual", source: Deploy | None = None
) -> Deploy:
    """The Deploy row first; the job is enqueued once the row is committed. Older queued
    deploys of the app are superseded: never two builds of stale commits in a row."""
    if commit:
        validate_commit(commit)
    with transaction.atomic():
        deploy = Deploy.objects.create(app=app, commit=commit, trigger=trigger, source=source)
        for older in app.deploys.filter(status=Deploy.QUEUED).exclude(pk=deploy.pk):
            if older.mark_superseded(deploy):
                live.status_changed(older)
        transaction.on_commit(lambda: deploy_enqueue(deploy_id=deploy.pk))
    return deploy


def deploy_enqueue(*, deploy_id: int) -> bool:
    """Hand a queued deploy to the worker. Redis being down is not an error here: the row is
    the queue of record, and the worker's sweep enqueues it once Redis is back."""
    import django_rq
    from redis.exceptions import RedisError

    from deployments import jobs

    claimed = Deploy.objects.filter(
        pk=deploy_id, status=Deploy.QUEUED, enqueued__isnull=True
    ).update(enqueued=timezone.now())
    if not claimed:
        return False
    try:
        django_rq.get_queue("deploys").enqueue(
            jobs.run_deploy,
            deploy_id,
            job_id=f"deploy-{deploy_id}",
            job_timeout=settings.KOYRA_DEPLOY_TIMEOUT + 120,
            result_ttl=3600,
            failure_ttl=86400,
        )
    except RedisError as exc:
        Deploy.objects.filter(pk=deploy_id).update(enqueued=None)
        log.warning("deploy %s stays queued until Redis is reachable: %s", deploy_id, exc)
        return False
    return True


def deploy_sweep(*, job_exists=None, running_elsewhere=None) -> dict[str, int]:
    """Run by the idle worker: nothing stays building forever, nothing queued is forgotten.

    - active deploys become failed: this worker is idle, so none of them is running, unless
      another live worker holds its job (two workers by mistake must not fail each other's);
    - queued deploys never handed to Redis, or whose job Redis lost, are enqueued.
    """
    failed = 0
    for d in Deploy.objects.filter(status__in=Deploy.ACTIVE):
        if running_elsewhere is not None and running_elsewhere(d.pk):
            continue
        if d.mark_failed(
            "interrupted: the worker stopped while this deploy was running; deploy again"
        ):
            live.status_changed(d)
            failed += 1
    enqueued = 0
    for d in Deploy.objects.filter(status=Deploy.QUEUED).order_by("created", "id"):
        if d.enqueued is not None and job_exists is not None and not job_exists(d.pk):
            Deploy.objects.filter(pk=d.pk).update(enqueued=None)
        if deploy_enqueue(deploy_id=d.pk):
            enqueued += 1
    return {"failed": failed, "enqueued": enqueued}


def deploy_cancel(*, app: App) -> Deploy | None:
    """Cancel the app's running deploy (its own build only) and its queued ones."""
    target = None
    for d in app.deploys.filter(status__in=Deploy.PENDING).order_by("created"):
        if d.status == Deploy.QUEUED:
            if d.mark_cancelled():
                live.status_changed(d)
                target = target or d
        else:
            Deploy.objects.filter(pk=d.pk).update(cancel_requested=True)
            target = d
    return target


def live_deploy(app: App) -> Deploy | None:
    return app.deploys.filter(status=Deploy.LIVE).select_related("image").first()


def redeploy_create(*, app: App) -> Deploy:
    current = live_deploy(app)
    if current is None or not current.spec:
        raise ValidationError(f"{app.name} has no live deploy to redeploy; deploy it first.")
    return deploy_create(app=app, commit=current.commit, trigger="redeploy", source=current)


def release_root(deploy: Deploy) -> Deploy:
    """The build deploy whose image and spec a redeploy or rollback re-applies."""
    seen = set()
    while deploy.trigger not in BUILD_TRIGGERS and deploy.source_id and deploy.pk not in seen:
        seen.add(deploy.pk)
        deploy = deploy.source
    return deploy


def release_stack(app: App) -> list[Deploy]:
    """The releases a rollback can walk back through, oldest first, current last. A build
    pushes its release; a rollback to X pops back to X (so the release rolled away from is
    never a target again); a redeploy changes nothing."""
    stack: list[Deploy] = []
    went_live = (
        app.deploys.filter(status__in=(Deploy.LIVE, Deploy.RETIRED))
        .select_related("source", "image")
        .order_by("finished", "id")
    )
    for d in went_live:
        root = release_root(d)
        if d.trigger == "rollback" and any(r.pk == root.pk for r in stack):
            while stack[-1].pk != root.pk:
                stack.pop()
        elif not stack or stack[-1].pk != root.pk:
            stack.append(root)
    return stack


def rollback_create(*, app: App, to: Deploy | None = None) -> Deploy:
    """A new deploy that re-applies an earlier release's recorded spec (with the current
    secret values): no clone, no build."""
    stack = release_stack(app)
    if to is not None:
        if to.app_id != app.pk:
            raise ValidationError(f"Deploy #{to.pk} is not a deploy of {app.name}.")
        target = release_root(to)
        if (
            not target.spec
            or target.image is None
            or target.status not in (Deploy.LIVE, Deploy.RETIRED)
        ):
            raise ValidationError(
                f"Deploy #{to.pk} never went live, so there is nothing to roll back to."
            )
    else:
        if len(stack) < 2:
            raise ValidationError(f"{app.name} has no earlier live release to roll back to.")
        target = stack[-2]
    if target.image is not None and target.image.deleted is not None:
        raise ValidationError(
            f"The image of deploy #{target.pk} was pruned (KOYRA_KEEP_RELEASES); deploy "
            f"commit {target.commit[:12]} again instead."
        )
    return deploy_create(app=app, commit=target.commit, trigger="rollback", source=target)


# --- Running --------------------------------------------------------------------------------


def deploy_run(*, deploy_id: int) -> Deploy:
    deploy = Deploy.objects.select_related("app").get(pk=deploy_id)
    if deploy.status != Deploy.QUEUED:
        return deploy  # superseded or cancelled while it waited
    newer = deploy.app.deploys.filter(status=Deploy.QUEUED, pk__gt=deploy.pk).first()
    if newer is not None:
        deploy.mark_superseded(newer)
        live.status_changed(deploy)
        return deploy
    return _Pipeline(deploy).run()


class _Pipeline:
    def __init__(self, deploy: Deploy) -> None:
        self.deploy = deploy
        self.app = deploy.app
        self.log = live.DeployLog(deploy)
        self.deadline = time.monotonic() + settings.KOYRA_DEPLOY_TIMEOUT
        self.workspace = Path(settings.KOYRA_WORKSPACE_DIR) / f"deploy-{deploy.pk}"
        self.created_service = False
        self._last_check = 0.0
        self._stop_reason = ""

    # Polled from the engine's watcher threads too: a cancel or the deadline stops the build.
    def should_stop(self) -> bool:
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
                    self._stop_reason = "cancelled by a user"
            finally:
                close_old_connections()
        return bool(self._stop_reason)

    def stage(self, name: str, status: str) -> None:
        if self.should_stop():
            raise DeployStopped(self._stop_reason)
        if not self.deploy.start_stage(name, status):
            raise DeployStopped(self.deploy.error or f"deploy is {self.deploy.status}")
        live.status_changed(self.deploy)
        self.log(f"==> {name}")

    def run(self) -> Deploy:
        d = self.deploy
        try:
            if d.trigger in BUILD_TRIGGERS:
                image, spec = self._build_path()
            else:
                image, spec = self._reuse_path()
            self._rollout(image, spec)
        except DeployStopped as exc:
            self._give_up(str(exc), cancelled=self._stop_reason == "cancelled by a user")
        except (
            DeployFailed,
            manifest_mod.ManifestError,
            git.GitError,
            engine.EngineError,
            crypto.VaultError,
        ) as exc:
            if self._stop_reason:
                self._give_up(self._stop_reason, cancelled=self._stop_reason.startswith("cancel"))
            else:
                self._give_up(str(exc))
        except ValidationError as exc:
            self._give_up(" ".join(exc.messages))
        finally:
            shutil.rmtree(self.workspace, ignore_errors=True)
        d.refresh_from_db()
        return d

    def _give_up(self, reason: str, *, cancelled: bool = False) -> None:
        reason = self.log.redact(reason)
        self.log(f"!! {reason}")
        if cancelled:
            self.deploy.mark_cancelled()
        else:
            self.deploy.mark_failed(reason)
        live.status_changed(self.deploy)

    # -- build path: clone, manifest, secrets check, build, push, release --

    def _build_path(self) -> tuple[Image, dict]:
        d, app = self.deploy, self.app
        self.stage("clone", Deploy.BUILDING)
        validate_repo_url(app.repo_url)  # again: settings may have changed since creation
        if not d.commit:
            commit = git.resolve(app.repo_url, app.branch)
            Deploy.objects.filter(pk=d.pk).update(commit=commit)
            d.commit = commit
        self.log(f"cloning {app.repo_url} at {d.commit}")
        git.clone_at(app.repo_url, d.commit, self.workspace, should_stop=self.should_stop)
        d.finish_stage("clone")
        m = manifest_mod.load(self.workspace)
        self.log(f"manifest: {'.paas/app.yaml' if m.present else 'none, using the defaults'}")
        self._check_secrets(m.secrets)

        self.stage("build", Deploy.BUILDING)
        context = self._inside(m.context, "build.context")
        dockerfile = self._inside(f"{m.context}/{m.dockerfile}", "build.dockerfile")
        if not dockerfile.is_file():
            raise DeployFailed(
                f"No Dockerfile at {m.context}/{m.dockerfile} in {d.short_commit}: add one, or "
                "set build.dockerfile in .paas/app.yaml"
            )
        ref = f"{settings.KOYRA_REGISTRY}/{app.name}:{d.commit}"
        args = m.build_args()
        if args:
            self.log(f"build args: {', '.join(sorted(args))}")
        engine.build(
            context=str(context),
            dockerfile=str(dockerfile.relative_to(context)),
            tag=ref,
            buildargs=args,
            labels={"koyra.app": app.name, "koyra.commit": d.commit},
            on_line=self.log,
            should_stop=self.should_stop,
        )
        d.finish_stage("build")

        self.stage("push", Deploy.PUSHING)
        digest = engine.push(ref=ref, on_line=self.log)
        info = engine.image_inspect(ref)
        image = Image.objects.create(
            app=app, ref=ref, digest=digest, commit=d.commit, size=info.get("Size") or 0
        )
        Deploy.objects.filter(pk=d.pk).update(image=image)
        d.image = image
        self.log(f"pushed {image.pinned}")
        d.finish_stage("push")

        spec = self._spec(m, image)
        _check_shell(spec, release=bool(m.release))
        _check_domains(self.app, spec["domains"])
        if m.release:
            self._release(image, m.release, spec)
        return image, spec

    def _inside(self, rel: str, field: str) -> Path:
        path = (self.workspace / rel).resolve()
        root = self.workspace.resolve()
        if path != root and root not in path.parents:
            raise DeployFailed(f".paas/app.yaml: {field}: points outside the repository")
        return path

    def _check_secrets(self, keys: list[str]) -> None:
        """Before anything is built: every secret the manifest names has a value and decrypts
        (fail closed), and the log redacts every current value of the app."""
        vault.secret_values(app=self.app, keys=keys)
        self.log.redact = live.Redactor(list(vault.secret_values(app=self.app).values()))

    def _release(self, image: Image, steps: list[str], spec: dict) -> None:
        """Once per deploy, before any task is replaced: a Swarm job of the new image on the
        app's network, with the runtime env and the secrets mounted like the app's own."""
        self.stage("release", Deploy.RELEASING)
        refs = self._swarm_secrets(spec["secrets"])
        script = "\n".join(
            [*_secret_exports(refs), "set -e"]
            + [f"echo {shlex.quote('$ ' + s)}\n{s}" for s in steps]
        )
        job = engine.ServiceSpec(
            name=f"{self.app.name}_release",
            image=image.pinned,
            labels={
                "koyra.app": self.app.name,
                "koyra.deploy": str(self.deploy.pk),
                "koyra.role": "release",
            },
            container_labels={"koyra.app": self.app.name, "koyra.role": "release"},
            command=["/bin/sh", "-c", script],
            args=[],
            env=dict(spec.get("env") or {}),
            networks=[settings.KOYRA_NETWORK],
            memory=spec.get("memory"),
            nano_cpus=spec.get("nano_cpus"),
            secrets=[{"id": r["id"], "name": r["name"], "file": r["file"]} for r in refs],
        )
        code = engine.run_job(
            job,
            on_line=self.log,
            should_stop=self.should_stop,
            timeout=max(1.0, self.deadline - time.monotonic()),
        )
        if code != 0:
            raise DeployFailed(
                f"release step failed with exit code {code}; the service was not changed"
            )
        self.deploy.finish_stage("release")

    # -- reuse path: redeploy/rollback, same image --

    def _reuse_path(self) -> tuple[Image, dict]:
        source = self.deploy.source
        if source is None or not source.spec or source.image is None:
            raise DeployFailed("nothing to re-apply: the source deploy recorded no spec")
        self.log(f"re-using the image of deploy #{source.pk}: {source.image.pinned} (no build)")
        Deploy.objects.filter(pk=self.deploy.pk).update(image=source.image, commit=source.commit)
        self.deploy.image = source.image
        self._check_secrets(source.spec.get("secrets", []))
        spec = dict(source.spec)
        # The release's own config, with the app's current routing (domains set since).
        manifest_domains = spec.get("manifest_domains", spec.get("domains", []))
        spec["domains"] = list(dict.fromkeys([*self.app.domains, *manifest_domains]))
        _check_domains(self.app, spec["domains"])
        return source.image, spec

    # -- rollout --

    def _spec(self, m: manifest_mod.Manifest, image: Image) -> dict:
        entrypoint, cmd = engine.image_command(image.ref)
        domains = list(dict.fromkeys([*self.app.domains, *m.domains]))
        return {
            "image": image.pinned,
            "entrypoint": entrypoint,
            "cmd": cmd,
            "env": m.env,
            "secrets": m.secrets,
            "predeploy": m.predeploy,
            "port": m.port,
            "replicas": m.replicas,
            "healthcheck": m.healthcheck,
            "domains": domains,
            "manifest_domains": m.domains,
            "memory": m.memory,
            "nano_cpus": m.nano_cpus,
            # Koyra's start wrapper (secrets, predeploy, drain) needs a shell in the image.
            "shell": engine.image_has(image.ref, "/bin/sh"),
        }

    def _rollout(self, image: Image, spec: dict) -> None:
        d, app = self.deploy, self.app
        self.stage("rollout", Deploy.DEPLOYING)
        Deploy.objects.filter(pk=d.pk).update(spec=spec)
        previous = live_deploy(app)
        secret_refs = self._swarm_secrets(spec["secrets"])
        svc = service_spec(app=app, deploy=d, spec=spec, secret_refs=secret_refs)
        # The record a rollback re-applies, labels included for the audit; never values.
        spec = {**spec, "labels": {k: v for k, v in svc.labels.items() if k != "koyra.deploy"}}
        Deploy.objects.filter(pk=d.pk).update(spec=spec)
        self.created_service = engine.service_get(svc.name) is None
        self.log(f"updating service {svc.name} to {image.pinned}")
        engine.service_apply(svc, force=True)
        try:
            result = engine.service_wait(
                svc.name,
                marker_label="koyra.deploy",
                marker=str(d.pk),
                replicas=spec["replicas"],
                timeout=settings.KOYRA_ROLLOUT_TIMEOUT,
                should_stop=self.should_stop,
                on_line=self.log,
            )
        except engine.Aborted:
            self._undo(previous)  # cancelled mid-rollout: back to what was live
            raise
        for line in engine.task_logs(svc.name, marker_label="koyra.deploy", marker=str(d.pk)):
            self.log(line)
        if not result.ok:
            self._undo(previous)
            detail = f" ({'; '.join(result.task_errors[-3:])})" if result.task_errors else ""
            keep = "the previous version keeps serving" if previous else "no version was live"
            raise DeployFailed(f"rollout failed: {result.message}{detail}; {keep}")
        self._wait_routed(spec)
        d.finish_stage("rollout")
        with transaction.atomic():
            for old in app.deploys.filter(status=Deploy.LIVE).exclude(pk=d.pk):
                old.mark_retired()
                live.status_changed(old)
            if not d.mark_live():
                raise DeployStopped(d.error or "deploy was stopped")
        self.log(f"live: every task runs {image.digest[:19]}")
        live.status_changed(d)
        _secrets_prune(app)
        self._retention()

    def _retention(self) -> None:
        """Old images leave the registry once a newer release is live; a failure here is
        logged, never turns a live deploy into a failed one."""
        from deployments import registry, retention

        try:
            for image in retention.retention_apply(app=self.app, say=lambda s: None):
                self.log(f"retention: removed {image.ref}")
        except (registry.RegistryError, engine.EngineError) as exc:
            self.log(f"retention skipped: {exc}")

    def _wait_routed(self, spec: dict) -> None:
        """A first deploy is served only once Traefik's next poll of the Swarm has seen it:
        wait for that (briefly, never failing the deploy) so `live` means reachable."""
        from deployments import cluster, ingress

        if not spec.get("domains") or engine.service_get(cluster.TRAEFIK_SERVICE) is None:
            return
        host = spec["domains"][0]
        if ingress.wait_routed(host, timeout=3 * settings.KOYRA_TRAEFIK_REFRESH_SECONDS + 2):
            self.log(f"traefik: routing {', '.join(spec['domains'])}")
        else:
            self.log(
                f"traefik: {host} not confirmed on this node's port {settings.KOYRA_HTTP_PORT} yet"
            )

    def _undo(self, previous: Deploy | None) -> None:
        """After a failed rollout, make sure nothing of this deploy is left running."""
        name = self.app.service_name
        if self.created_service or previous is None:
            engine.service_remove(name)
            return
        attrs = engine.service_get(name) or {}
        if attrs.get("UpdateStatus", {}).get("State") != "rollback_completed":
            # Swarm did not roll back by itself (timeout): put the live spec back.
            engine.service_apply(
                service_spec(
                    app=self.app,
                    deploy=previous,
                    spec=previous.spec,
                    secret_refs=self._swarm_secrets(previous.spec.get("secrets", [])),
                ),
                force=True,
            )

    def _swarm_secrets(self, keys: list[str]) -> list[dict]:
        values = vault.secret_values(app=self.app, keys=keys)
        # A value set since _check_secrets() read them (set_secret during the build) reaches the
        # tasks, whose output is copied into this log: redact it too.
        self.log.redact = live.Redactor([*self.log.redact.values, *values.values()])
        return [swarm_secret(app=self.app, key=k, value=v) for k, v in sorted(values.items())]


def swarm_secret(*, app: App, key: str, value: str) -> dict:
    """A versioned Swarm secret per value: a change makes a new one, never an edit. The
    version is an HMAC, so the name says nothing about the value."""
    mac = hmac.new(
        settings.SECRET_KEY.encode(), f"{app.name}\0{key}\0{value}".encode(), hashlib.sha256
    ).hexdigest()[:16]
    name = f"koyra-{app.name}-{mac}"
    sid = engine.secret_ensure(name, value, {"koyra.app": app.name, "koyra.key": key})
    return {"id": sid, "name": name, "file": f"koyra-{key}", "key": key}


def _secrets_prune(app: App) -> None:
    """Remove this app's Swarm secret versions the live service spec no longer mounts. (Swarm
    refuses only while the current spec references one; a draining task keeps its tmpfs
    copy. Swarm's own `service rollback` would miss the old version: Koyra's rollback makes
    the versions it needs again.)"""
    attrs = engine.service_get(app.service_name) or {}
    used = {
        s["SecretName"]
        for s in attrs.get("Spec", {})
        .get("TaskTemplate", {})
        .get("ContainerSpec", {})
        .get("Secrets", [])
        or []
    }
    for s in engine.secrets_list(f"koyra.app={app.name}"):
        if s["name"] not in used:
            engine.secret_remove(s["id"])


def _check_domains(app: App, domains: list[str]) -> None:
    """A host name routes to one app: Traefik would split its traffic between two routers."""
    claimed = app_services.app_domain_owners(exclude=app.name)
    for d in Deploy.objects.filter(status=Deploy.LIVE).exclude(app=app).select_related("app"):
        claimed.update({host: d.app.name for host in d.spec.get("domains", [])})
    for host in domains:
        if host in claimed:
            raise DeployFailed(
                f"domain {host} already routes to the app {claimed[host]!r}; one host name "
                "can serve one app (check run.domains in .paas/app.yaml and the app's domains)"
            )


def _check_shell(spec: dict, *, release: bool) -> None:
    if spec.get("shell", True):
        return
    needs = [
        what
        for what, used in (
            ("secrets", spec.get("secrets")),
            ("predeploy steps", spec.get("predeploy")),
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


def _secret_exports(secret_refs: list[dict]) -> list[str]:
    """Shell lines that export each secret from its Swarm-mounted tmpfs file."""
    lines = []
    for ref in secret_refs:
        path = shlex.quote(f"{SECRETS_DIR}/{ref['file']}")
        lines.append(f'{ref["key"]}="$(cat {path})" || exit 1; export {ref["key"]}')
    return lines


def _start_script(spec: dict, secret_refs: list[dict]) -> str:
    """The wrapper every task starts with: export secrets from Swarm's tmpfs files, run the
    predeploy steps, then the image's own ENTRYPOINT+CMD ("$@"). On TERM it keeps serving for
    a drain period first, so Traefik (which polls the Swarm) stops sending it requests."""
    lines = [
        "koyra_pid=",
        f"koyra_term() {{ sleep {settings.KOYRA_DRAIN_SECONDS}; "
        '[ -n "$koyra_pid" ] && kill -TERM "$koyra_pid" 2>/dev/null; }',
        "trap koyra_term TERM INT",
    ]
    lines += _secret_exports(secret_refs)
    for step in spec.get("predeploy", []):
        lines.append(f"echo {shlex.quote('koyra predeploy: ' + step)}")
        lines.append(f"( {step} ) || {{ echo 'koyra predeploy failed: exit '$?; exit 1; }}")
    lines += [
        '[ "$#" -gt 0 ] || { echo "koyra: the image has no ENTRYPOINT or CMD"; exit 1; }',
        '"$@" &',
        "koyra_pid=$!",
        'while :; do wait "$koyra_pid"; s=$?; kill -0 "$koyra_pid" 2>/dev/null || exit "$s"; done',
    ]
    return "\n".join(lines)


def _healthcheck(spec: dict) -> dict | None:
    hc = spec.get("healthcheck")
    if not hc:
        return None
    if "path" in hc:
        url = shlex.quote(f"http://127.0.0.1:{spec['port']}{hc['path']}")
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


def traefik_labels(*, app: App, spec: dict) -> dict[str, str]:
    domains = spec.get("domains") or []
    if not domains:
        return {}
    r = f"traefik.http.routers.{app.name}"
    labels = {
        "traefik.enable": "true",
        f"{r}.rule": " || ".join(f"Host(`{d}`)" for d in domains),
        f"traefik.http.services.{app.name}.loadbalancer.server.port": str(spec["port"]),
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


def service_spec(
    *, app: App, deploy: Deploy, spec: dict, secret_refs: list[dict]
) -> engine.ServiceSpec:
    hc = _healthcheck(spec)
    monitor = 5
    if hc:
        monitor = hc["start_period"] + (hc["interval"] + hc["timeout"]) * (hc["retries"] + 1)
    command = args = None
    if spec.get("shell", True) and (
        spec.get("predeploy") or secret_refs or settings.KOYRA_DRAIN_SECONDS
    ):
        command = ["/bin/sh", "-c", _start_script(spec, secret_refs)]
        args = ["koyra-start", *spec["entrypoint"], *spec["cmd"]]
    return engine.ServiceSpec(
        name=app.service_name,
        image=spec["image"],
        labels={
            "koyra.app": app.name,
            "koyra.deploy": str(deploy.pk),
            "com.docker.stack.namespace": app.name,
            **traefik_labels(app=app, spec=spec),
        },
        container_labels={"koyra.app": app.name, "koyra.deploy": str(deploy.pk)},
        command=command,
        args=args,
        env=dict(spec.get("env") or {}),
        networks=[settings.KOYRA_NETWORK],
        replicas=spec["replicas"],
        memory=spec.get("memory"),
        nano_cpus=spec.get("nano_cpus"),
        healthcheck=hc,
        monitor=monitor,
        stop_grace=settings.KOYRA_DRAIN_SECONDS + 10,
        secrets=[{"id": r["id"], "name": r["name"], "file": r["file"]} for r in secret_refs],
    )
