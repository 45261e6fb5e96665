"""The Docker/Swarm boundary: the only module that imports `docker`.

Everything here takes and returns plain Python values; errors surface as EngineError with a
message fit for a deploy log (never an SDK traceback, never a secret value).
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import functools
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

import docker
import docker.auth
import docker.errors
import docker.models.secrets
import requests.exceptions
import urllib3.exceptions
from docker.types import (
    EndpointSpec,
    Healthcheck,
    Resources,
    RestartPolicy,
    RollbackConfig,
    SecretReference,
    UpdateConfig,
)

LineCallback = Callable[[str], None]
# Called when a stream has said nothing for QUIET_SECONDS: a line sink that batches (the
# deploy log) hands on what it holds, so the last lines before a long silent step are seen now.
QuietCallback = Callable[[], None]
QUIET_SECONDS = 0.05
# How long a paced stream's reader gathers items before they are handed over (see _paced).
GATHER_SECONDS = 0.002
_T = TypeVar("_T")
SPEC_HASH_LABEL = "koyra.spec-hash"


class EngineError(Exception):
    """A Docker or Swarm operation failed; the message says what and, where known, why."""


class Aborted(EngineError):
    """The operation was stopped on purpose (cancel or timeout)."""


@functools.cache
def client() -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=300)
        c.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineError(
            f"Cannot reach the Docker engine ({exc}). Start dockerd, or set DOCKER_HOST."
        ) from exc
    return c


def _api_error(what: str, exc: Exception) -> EngineError:
    msg = getattr(exc, "explanation", None) or str(exc)
    if isinstance(msg, bytes):
        msg = msg.decode(errors="replace")
    return EngineError(f"{what}: {msg}")


# --- Cluster ------------------------------------------------------------------------------


def swarm_ensure(*, advertise_addr: str = "") -> str:
    """Make this engine a swarm manager if it is not in a swarm yet. Returns what it did."""
    state = client().info().get("Swarm", {}).get("LocalNodeState")
    if state == "active":
        return "already in a swarm"
    try:
        client().swarm.init(advertise_addr=advertise_addr or None)
    except docker.errors.APIError as exc:
        raise _api_error(
            "docker swarm init failed (set KOYRA_SWARM_ADVERTISE_ADDR to this node's address "
            "if it has several)",
            exc,
        ) from exc
    return "initialised a new swarm"


def network_ensure(name: str) -> bool:
    """An attachable overlay network named `name`; True when it was created now."""
    for net in client().networks.list(names=[name]):
        if net.name == name:
            if net.attrs.get("Driver") != "overlay":
                raise EngineError(
                    f"Network {name!r} exists but is a {net.attrs.get('Driver')} network; "
                    "remove it or set KOYRA_NETWORK to another name."
                )
            return False
    try:
        client().networks.create(name, driver="overlay", attachable=True, labels={"koyra": "1"})
    except docker.errors.APIError as exc:
        raise _api_error(f"Cannot create network {name!r}", exc) from exc
    return True


def image_ensure(ref: str) -> None:
    """The image is here, or is pulled now; EngineError says why it cannot be had."""
    try:
        client().images.get(ref)
        return
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        raise _api_error(f"Cannot inspect image {ref}", exc) from exc
    try:
        repo, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "latest")
        client().api.pull(repo, tag=tag or "latest")
        client().images.get(ref)
    except (docker.errors.APIError, docker.errors.ImageNotFound) as exc:
        raise _api_error(f"Image {ref} is not on this engine and cannot be pulled", exc) from exc


# --- Nodes --------------------------------------------------------------------------------


def swarm_join() -> dict[str, str]:
    """What a new node needs to join as a worker: {"token", "addr"} (the worker join token, a
    credential, and a manager's address as the swarm advertises it)."""
    try:
        attrs = client().swarm.attrs
        info = client().info().get("Swarm", {})
    except docker.errors.APIError as exc:
        raise _api_error("Cannot read the swarm (is this engine a manager?)", exc) from exc
    token = (attrs.get("JoinTokens") or {}).get("Worker")
    managers = [m.get("Addr", "") for m in info.get("RemoteManagers") or []]
    if not token or not managers:
        raise EngineError("This engine is not a swarm manager: run bootstrap_cluster on one")
    return {"token": str(token), "addr": str(managers[0])}


def nodes_list() -> list[dict[str, Any]]:
    """Every node of the swarm, plain: id, hostname, role, state, availability, engine
    version, address, leader, and its labels."""
    try:
        nodes = client().api.nodes()
    except docker.errors.APIError as exc:
        raise _api_error("Cannot list the swarm's nodes", exc) from exc
    rows = []
    for n in nodes:
        spec, desc, status = n.get("Spec", {}), n.get("Description", {}), n.get("Status", {})
        rows.append(
            {
                "id": n["ID"],
                "hostname": desc.get("Hostname", ""),
                "role": spec.get("Role", ""),
                "state": status.get("State", ""),
                "availability": spec.get("Availability", ""),
                "engine": (desc.get("Engine") or {}).get("EngineVersion", ""),
                "addr": status.get("Addr", ""),
                "leader": bool((n.get("ManagerStatus") or {}).get("Leader")),
                "labels": dict(spec.get("Labels") or {}),
            }
        )
    return sorted(rows, key=lambda r: (r["role"] != "manager", r["hostname"], r["id"]))


def running_tasks(label: str) -> list[dict[str, str]]:
    """Tasks Swarm wants running whose container carries `label`: {"node", "value",
    "state", "service"} each (the node id, the label's value, the task's actual state)."""
    try:
        tasks = client().api.tasks(filters={"desired-state": "running"})
    except docker.errors.APIError as exc:
        raise _api_error("Cannot list the swarm's tasks", exc) from exc
    found = []
    for t in tasks:
        value = ((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels", {}).get(label)
        if value is not None:
            found.append(
                {
                    "node": t.get("NodeID", ""),
                    "value": str(value),
                    "state": (t.get("Status") or {}).get("State", ""),
                    "service": t.get("ServiceID", ""),
                }
            )
    return found


def node_availability(node_id: str, availability: Literal["active", "pause", "drain"]) -> bool:
    """Set a node's availability (drain: Swarm moves its tasks elsewhere). False when it
    already was."""
    try:
        n = client().api.inspect_node(node_id)
        spec = dict(n["Spec"])
        if spec.get("Availability") == availability:
            return False
        spec["Availability"] = availability
        client().api.update_node(node_id, n["Version"]["Index"], cast(Any, spec))
    except docker.errors.NotFound as exc:
        raise EngineError(f"No node {node_id} in the swarm") from exc
    except docker.errors.APIError as exc:
        raise _api_error(f"Cannot set node {node_id} to {availability}", exc) from exc
    return True


# --- Services -----------------------------------------------------------------------------


@dataclass
class ServiceSpec:
    """A whole Swarm service, declaratively: applying it replaces every field."""

    name: str
    image: str
    labels: dict[str, str] = field(default_factory=dict)
    container_labels: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    networks: list[str] = field(default_factory=list)
    replicas: int = 1
    mounts: list[str] = field(default_factory=list)  # "source:target[:ro]"
    ports: dict[int, int] = field(default_factory=dict)  # published -> target, host mode
    constraints: list[str] = field(default_factory=list)
    # Placement preferences, each spread evenly over a node attribute ("node.id": one task
    # per node before any node gets a second).
    spread: list[str] = field(default_factory=list)
    memory: int | None = None  # bytes
    nano_cpus: int | None = None
    healthcheck: dict[str, Any] | None = None  # {"test": [...], "interval": s, ...}
    monitor: int = 5  # seconds Swarm watches each updated task for failure
    stop_grace: int = 10
    secrets: list[dict[str, str]] = field(default_factory=list)  # [{"id", "name", "file"}]
    restart_max_attempts: int | None = None
    job: bool = False  # a one-off task (replicated-job): runs once, never restarted
    # {"username", "password", "serveraddress"}: sent to the manager as X-Registry-Auth so the
    # nodes can pull the image; never part of the spec itself (nor of its fingerprint).
    registry_auth: dict[str, str] | None = field(default=None, repr=False, compare=False)

    def fingerprint(self) -> str:
        # An empty `spread` is left out: services made before it existed keep their fingerprint.
        fields = {
            k: v
            for k, v in self.__dict__.items()
            if k != "registry_auth" and not (k == "spread" and not v)
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _service_kwargs(spec: ServiceSpec) -> dict[str, Any]:
    labels = {**spec.labels, SPEC_HASH_LABEL: spec.fingerprint()}
    # A host-mode port is held by the old task: a new one could never start first.
    order: Literal["start-first", "stop-first"] = "stop-first" if spec.ports else "start-first"
    ports = {p: (t, "tcp", "host") for p, t in spec.ports.items()}
    kwargs: dict[str, Any] = {
        "name": spec.name,
        "image": spec.image,
        "labels": labels,
        "container_labels": spec.container_labels,
        "command": spec.command,
        "args": spec.args,
        "env": [f"{k}={v}" for k, v in sorted(spec.env.items())],
        "networks": spec.networks,
        "mode": (
            docker.types.ServiceMode("replicated-job", concurrency=1, replicas=1)
            if spec.job
            else docker.types.ServiceMode("replicated", replicas=spec.replicas)
        ),
        "mounts": spec.mounts,
        "constraints": spec.constraints,
        "preferences": [("spread", d) for d in spec.spread],
        "stop_grace_period": _ns(spec.stop_grace),
        # dnsrr: Swarm's IPVS routing mesh does not work everywhere (and Traefik talks to task
        # IPs directly), so no VIP; host-mode ports for anything published.
        # types-docker wants str port numbers; the Engine API (and docker-py) takes ints.
        "endpoint_spec": EndpointSpec(mode="dnsrr", ports=ports),  # type: ignore[arg-type]
        "update_config": UpdateConfig(
            parallelism=1,
            order=order,
            failure_action="rollback",
            monitor=_ns(spec.monitor),
            max_failure_ratio=0,
        ),
        "rollback_config": RollbackConfig(
            parallelism=1, order=order, failure_action="pause", monitor=_ns(spec.monitor)
        ),
        "restart_policy": RestartPolicy(
            condition="none" if spec.job else "any",
            delay=_ns(2),
            max_attempts=spec.restart_max_attempts or 0,
        ),
        "resources": Resources(cpu_limit=spec.nano_cpus, mem_limit=spec.memory),
        "secrets": [
            SecretReference(s["id"], s["name"], filename=s["file"], mode=0o400)
            for s in spec.secrets
        ],
    }
    if spec.job:  # Swarm refuses update and rollback policies on jobs
        del kwargs["update_config"], kwargs["rollback_config"]
    if spec.healthcheck:
        h = spec.healthcheck
        kwargs["healthcheck"] = Healthcheck(
            test=h["test"],
            interval=_ns(h["interval"]),
            timeout=_ns(h["timeout"]),
            retries=h["retries"],
            start_period=_ns(h["start_period"]),
        )
    return kwargs


def service_get(name: str) -> dict[str, Any] | None:
    """The service's attrs, or None."""
    try:
        attrs: dict[str, Any] = client().services.get(name).attrs
        return attrs
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise _api_error(f"Cannot inspect service {name}", exc) from exc


def service_apply(spec: ServiceSpec, *, force: bool = False) -> str:
    """Create or replace a service. Returns "created", "updated" or "unchanged".

    With force, the tasks are replaced even when nothing in the spec changed (a redeploy).
    """
    kwargs = _service_kwargs(spec)
    c = client()
    if spec.registry_auth:
        # What `login` leaves on a client, without its round trip: docker-py sends it as
        # X-Registry-Auth with the create/update (a private attribute, so untyped).
        c.api._auth_configs = docker.auth.AuthConfig(  # type: ignore[attr-defined]
            {"auths": {spec.registry_auth["serveraddress"]: dict(spec.registry_auth)}}
        )
    try:
        svc = c.services.get(spec.name)
    except docker.errors.NotFound:
        svc = None
    try:
        if svc is None:
            c.services.create(**kwargs)
            return "created"
        current = svc.attrs["Spec"].get("Labels", {}).get(SPEC_HASH_LABEL)
        if current == kwargs["labels"][SPEC_HASH_LABEL] and not force:
            return "unchanged"
        if force:
            kwargs["force_update"] = True
        svc.update(**kwargs)
        return "updated"
    except docker.errors.APIError as exc:
        raise _api_error(f"Cannot apply service {spec.name}", exc) from exc


def service_remove(name: str) -> bool:
    try:
        client().services.get(name).remove()
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        raise _api_error(f"Cannot remove service {name}", exc) from exc


def services_replicas(label: str) -> dict[str, tuple[int, int]]:
    """Service name -> (running tasks, desired tasks) of every service carrying `label`, in one
    API call: what `docker service ls` shows as REPLICAS. A task with a healthcheck counts as
    running only once it is healthy (Swarm keeps it `starting` until then)."""
    try:
        services: list[dict[str, Any]] = client().api.services(  # type: ignore[no-untyped-call]
            filters={"label": label}, status=True
        )
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise _api_error("Cannot list services", exc) from exc
    counts: dict[str, tuple[int, int]] = {}
    for s in services:
        status = s.get("ServiceStatus") or {}
        counts[s["Spec"]["Name"]] = (
            int(status.get("RunningTasks") or 0),
            int(status.get("DesiredTasks") or 0),
        )
    return counts


def service_tasks(name: str) -> list[dict[str, Any]]:
    try:
        tasks: list[dict[str, Any]] = client().api.tasks(filters={"service": name})
        return tasks
    except docker.errors.APIError as exc:
        raise _api_error(f"Cannot list tasks of {name}", exc) from exc


def task_logs(name: str, *, marker_label: str, marker: str, tail: int = 40) -> list[str]:
    """The last lines of each container of the service's tasks that carry `marker` (predeploy
    output, the app's start-up, why it died). Containers on other nodes are skipped."""
    lines: list[str] = []
    for t in service_tasks(name):
        if t["Spec"]["ContainerSpec"].get("Labels", {}).get(marker_label) != marker:
            continue
        cid = t.get("Status", {}).get("ContainerStatus", {}).get("ContainerID")
        if not cid:
            continue
        try:
            raw = client().api.logs(cid, stdout=True, stderr=True, tail=tail)
        except docker.errors.APIError:
            continue  # on another node, or already removed
        for line in raw.decode(errors="replace").splitlines():
            lines.append(f"[task {t['ID'][:8]}] {line.rstrip()}")
    return lines


def task_probes(name: str, *, marker_label: str, marker: str) -> list[dict[str, Any]]:
    """The last healthcheck probe of each container of the service's tasks that carry `marker`,
    newest task first: {"task", "status" (the container's health), "exit", "output"}. A task
    without a healthcheck, a probe yet, or a container on this node is left out."""
    tasks = [
        t
        for t in service_tasks(name)
        if t["Spec"]["ContainerSpec"].get("Labels", {}).get(marker_label) == marker
    ]
    probes: list[dict[str, Any]] = []
    for t in sorted(tasks, key=lambda t: t.get("UpdatedAt") or "", reverse=True):
        cid = t.get("Status", {}).get("ContainerStatus", {}).get("ContainerID")
        if not cid:
            continue
        try:
            health = client().api.inspect_container(cid).get("State", {}).get("Health") or {}
        except docker.errors.APIError:
            continue  # on another node, or already removed
        log = health.get("Log") or []
        if log:
            last = log[-1]
            probes.append(
                {
                    "task": t["ID"][:12],
                    "status": health.get("Status", ""),
                    "exit": last.get("ExitCode"),
                    "output": str(last.get("Output") or ""),
                }
            )
    return probes


@dataclass
class Rollout:
    ok: bool
    message: str
    task_errors: list[str] = field(default_factory=list)


def _task_summary(t: dict[str, Any]) -> str:
    st = t.get("Status", {})
    err = st.get("Err") or st.get("Message") or ""
    return f"task {t.get('ID', '')[:12]}: {st.get('State')} {err}".strip()


# A task's states before it runs, in Swarm's order.
_NOT_RUNNING_YET = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting")
# Changed on the service to make Swarm start its update again (what it holds: the task the
# stalled update waited for).
UPDATE_RESTART_LABEL = "koyra.update-restart"


def _restart_update_stalled_on_down_node(
    attrs: dict[str, Any], ours: list[dict[str, Any]], restarted: set[str], on_line: LineCallback
) -> None:
    """Swarm's updater waits, without a timeout, for the new task of each slot to run. When
    the node that task was placed on goes down before it ran, Swarm gives the task up (desired
    `shutdown`, its state frozen at what the node last said) and starts its slot again on a
    node that is up, but the updater keeps waiting for the given-up task: the update stays
    `updating` forever, and the slots it had not reached keep the old version (swarmkit, seen
    on Docker 20.10). Any change to the service's spec starts a new updater, which replaces
    what is still old on the nodes that are up: a label naming the given-up task."""
    stuck = [
        t
        for t in ours
        if t["ID"] not in restarted
        and t.get("DesiredState") != "running"
        and t.get("Status", {}).get("State") in _NOT_RUNNING_YET
        and t.get("NodeID")
    ]
    if not stuck:
        return
    down = {n["id"]: n["hostname"] for n in nodes_list() if n["state"] != "ready"}
    task = next((t for t in stuck if t["NodeID"] in down), None)
    if task is None:
        return
    restarted.add(task["ID"])
    labels = {**(attrs["Spec"].get("Labels") or {}), UPDATE_RESTART_LABEL: task["ID"]}
    try:
        client().api.update_service(
            attrs["ID"], attrs["Version"]["Index"], labels=labels, fetch_current_spec=True
        )
    except docker.errors.APIError as exc:
        on_line(f"swarm: cannot restart the update stalled on node {down[task['NodeID']]}: {exc}")
        return
    on_line(
        f"swarm: node {down[task['NodeID']]} is down; task {task['ID'][:12]} of the new version "
        "will not run there: the update starts again on the nodes that are up"
    )


def service_wait(
    name: str,
    *,
    marker_label: str,
    marker: str,
    replicas: int,
    timeout: float,
    should_stop: Callable[[], bool] = lambda: False,
    on_line: LineCallback = lambda s: None,
    max_failures: int = 3,
    poll: float = 1.0,
    unplaceable_after: float = 20.0,
) -> Rollout:
    """Wait until every running task carries `marker` in its container labels and is running
    (Swarm reports a task with a healthcheck as running only once it is healthy), and any update
    has completed. Swarm's update call succeeds even when it later rolls back, so the verdict
    comes from UpdateStatus and the tasks, not from that call. `poll`: seconds between looks.
    A task Swarm cannot place (it stays pending with "no suitable node ...": constraints no
    node meets, resources no node has) is said in Swarm's words at once, and fails the wait
    once it stayed so for `unplaceable_after` seconds: a node may still join meanwhile.
    """
    deadline = time.monotonic() + timeout
    seen_errors: dict[str, str] = {}
    pending_said: set[tuple[str, str]] = set()
    restarted: set[str] = set()  # tasks on a down node the update was restarted without
    unplaceable_since: float | None = None
    last_state = None
    while True:
        attrs = service_get(name)
        if attrs is None:
            return Rollout(False, f"service {name} disappeared")
        upd = attrs.get("UpdateStatus") or {}
        state = upd.get("State")
        if state != last_state and state:
            on_line(f"swarm: update {state}{': ' + upd['Message'] if upd.get('Message') else ''}")
            last_state = state
        tasks = service_tasks(name)
        ours = [
            t
            for t in tasks
            if t["Spec"]["ContainerSpec"].get("Labels", {}).get(marker_label) == marker
        ]
        for t in ours:
            st = t.get("Status", {})
            ended = st.get("State") in ("failed", "rejected", "shutdown", "complete")
            if ended and st.get("Err") and t["ID"] not in seen_errors:
                seen_errors[t["ID"]] = _task_summary(t)
                on_line(f"swarm: {seen_errors[t['ID']]}")
        unplaceable = []
        for t in ours:
            st = t.get("Status", {})
            if st.get("State") != "pending" or not st.get("Err"):
                continue
            if (t["ID"], st["Err"]) not in pending_said:
                pending_said.add((t["ID"], st["Err"]))
                on_line(f"swarm: {_task_summary(t)}")
            if t.get("DesiredState") == "running":
                unplaceable.append(st["Err"])
        if not unplaceable:
            unplaceable_since = None
        elif unplaceable_since is None:
            unplaceable_since = time.monotonic()
        elif time.monotonic() - unplaceable_since > unplaceable_after:
            return Rollout(
                False,
                f"Swarm cannot place the new version: {unplaceable[0]}",
                [*seen_errors.values()],
            )
        errors = list(seen_errors.values())
        if state in ("rollback_started", "rollback_paused", "rollback_completed", "paused"):
            if state == "rollback_started" and time.monotonic() < deadline:
                time.sleep(poll)  # wait for the old version to be fully back before reporting
                continue
            return Rollout(
                False, f"Swarm rolled the update back: {upd.get('Message', state)}", errors
            )
        if state == "updating":
            _restart_update_stalled_on_down_node(attrs, ours, restarted, on_line)
        running = [t for t in tasks if t.get("DesiredState") == "running"]
        good = [
            t
            for t in ours
            if t.get("DesiredState") == "running" and t.get("Status", {}).get("State") == "running"
        ]
        if state in (None, "completed") and len(good) == replicas and len(running) == replicas:
            return Rollout(True, "all tasks run the new version", errors)
        if state is None and len(seen_errors) >= max_failures:
            return Rollout(False, f"{len(seen_errors)} tasks of the new version failed", errors)
        if should_stop():
            raise Aborted("stopped while waiting for the rollout")
        if time.monotonic() > deadline:
            return Rollout(False, f"the rollout did not converge within {int(timeout)}s", errors)
        time.sleep(poll)


# --- Images -------------------------------------------------------------------------------


class _Abortable:
    """Lets another thread cut a streaming API call (build, logs) by shutting its socket:
    the daemon stops a build whose client went away."""

    def __init__(self) -> None:
        self.response: requests.Response | None = None
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True
        resp = self.response
        if resp is None:
            return
        sock = None
        raw = getattr(resp, "raw", None)
        conn = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
        sock = getattr(conn, "sock", None)
        if sock is None:
            fp = getattr(raw, "_fp", None)
            sock = getattr(getattr(getattr(fp, "fp", None), "raw", None), "_sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
            resp.close()
        except OSError:
            pass


def _watch(should_stop: Callable[[], bool], handle: _Abortable, done: threading.Event) -> None:
    while not done.wait(0.5):
        if should_stop():
            handle.abort()
            return


@dataclass
class _End:
    """What ends a paced stream: its error, or None when it ran out."""

    error: BaseException | None


def _paced(stream: Iterable[_T], on_quiet: QuietCallback | None) -> Iterator[_T]:
    """The items of `stream` as they come. With `on_quiet`, the stream is read on a helper
    thread and `on_quiet` runs on this one whenever QUIET_SECONDS pass without an item (this
    thread may be the only one allowed to touch what the sink writes to, e.g. the database).
    An error of the stream is raised here, as it was raised there.

    Items are handed over in bursts: woken by the first, this thread lets the reader gather
    for GATHER_SECONDS, then takes all it holds. Handing over item by item woke this thread
    and passed the GIL back and forth once per item: reading a build that prints 10,000
    lines cost the worker 0.05-0.2 s of CPU (0.04 s in bursts, as read without a helper
    thread), and the build took up to half as long again on a machine with another busy
    core."""
    if on_quiet is None:
        yield from stream
        return
    held: collections.deque[Any] = collections.deque()
    ready = threading.Event()
    stop = threading.Event()

    def _read() -> None:
        end = _End(None)
        try:
            for item in stream:
                held.append(item)
                ready.set()
                if stop.is_set():
                    return
        except BaseException as exc:  # handed over: raised on the consuming thread
            end = _End(exc)
        held.append(end)
        ready.set()

    threading.Thread(target=_read, daemon=True).start()
    try:
        while True:
            if not ready.wait(QUIET_SECONDS):
                on_quiet()
                continue
            time.sleep(GATHER_SECONDS)
            # Cleared before taking: an item added meanwhile sets it again (never lost).
            ready.clear()
            while held:
                item = held.popleft()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
    finally:
        stop.set()


def _streaming_api(handle: _Abortable) -> docker.APIClient:
    """A private API client whose streaming responses `handle` can cut."""
    api = docker.from_env(timeout=3600, version=client().api.api_version).api
    # A private method, so types-docker does not declare it.
    original: Callable[..., Any] = api._stream_helper  # type: ignore[attr-defined]

    def _keep(response: requests.Response, decode: bool = False) -> Any:
        handle.response = response
        return original(response, decode=decode)

    api._stream_helper = _keep  # type: ignore[attr-defined]  # as above
    return api


# What a _LineBuffer holds of one line: a build printing gigabytes without a newline must not
# take the worker's memory. The log stores far less of a line (logstream.MAX_LINE), and cuts
# it only after redaction, so a secret at this cut is never stored in part.
MAX_LINE_HELD = 1024 * 1024


class _LineBuffer:
    """Joins stream chunks into whole lines: a line (and a secret in it) may arrive in pieces.
    Of a line longer than MAX_LINE_HELD only its start is kept; the rest is dropped."""

    def __init__(self, on_line: LineCallback) -> None:
        self.on_line = on_line
        self.pending = ""

    def feed(self, text: str) -> None:
        *ends, tail = text.split("\n")
        for part in ends:
            self._hold(part)
            self.flush()
        self._hold(tail)

    def _hold(self, part: str) -> None:
        room = MAX_LINE_HELD - len(self.pending)
        if room > 0:
            self.pending += part[:room]

    def flush(self) -> None:
        if self.pending.strip():
            self.on_line(self.pending.rstrip())
        self.pending = ""


def build(
    *,
    context: str,
    dockerfile: str,
    tag: str,
    buildargs: dict[str, str],
    labels: dict[str, str] | None = None,
    on_line: LineCallback,
    on_quiet: QuietCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> str:
    """docker build with the daemon's layer cache; every output line goes to on_line as it
    comes (and on_quiet runs when the build is silent, see _paced). Returns the image id.
    Nothing per-deploy should go into the build: `labels` cost the classic builder one more
    committed step after the last instruction (they do not bust the layer cache)."""
    _check_context(context, dockerfile)
    handle = _Abortable()
    done = threading.Event()
    threading.Thread(target=_watch, args=(should_stop, handle, done), daemon=True).start()
    api = _streaming_api(handle)
    image_id: str | None = None
    out = _LineBuffer(on_line)
    try:
        stream = api.build(
            path=context,
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs,
            labels=labels,
            decode=True,
            rm=True,
            forcerm=True,
            pull=False,
        )
        for chunk in _paced(stream, on_quiet):
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise EngineError(f"docker build failed: {detail.strip()}")
            out.feed(chunk.get("stream") or "")
            aux = chunk.get("aux") or {}
            if aux.get("ID"):
                image_id = aux["ID"]
    except (docker.errors.APIError, docker.errors.BuildError) as exc:
        raise _api_error("docker build failed", exc) from exc
    except (
        requests.exceptions.RequestException,
        urllib3.exceptions.HTTPError,
        OSError,
        AttributeError,
        ValueError,
    ) as exc:
        if handle.aborted:
            raise Aborted("build stopped") from exc
        raise EngineError(
            f"docker build failed: lost the connection to the engine ({exc})"
        ) from exc
    finally:
        out.flush()
        done.set()
        api.close()
    if handle.aborted:
        raise Aborted("build stopped")
    if not image_id:
        raise EngineError("docker build ended without producing an image")
    return image_id


def _check_context(context: str, dockerfile: str) -> None:
    """docker-py opens `.dockerignore` and an out-of-context Dockerfile by name, following
    symlinks: neither may make it read outside the context (a host file, /dev/zero)."""
    ignore = os.path.join(context, ".dockerignore")
    if os.path.islink(ignore) or (os.path.lexists(ignore) and not os.path.isfile(ignore)):
        raise EngineError("docker build refused: .dockerignore must be a regular file")
    if os.path.isabs(dockerfile) or os.path.normpath(dockerfile).split(os.sep)[0] == "..":
        raise EngineError("docker build refused: the Dockerfile must be inside the context")


def image_inspect(ref: str) -> dict[str, Any]:
    try:
        attrs: dict[str, Any] = client().api.inspect_image(ref)
        return attrs
    except docker.errors.APIError as exc:
        raise _api_error(f"Cannot inspect image {ref}", exc) from exc


def image_command(ref: str) -> tuple[list[str], list[str]]:
    """The image's own ENTRYPOINT and CMD, exactly as configured."""
    cfg = image_inspect(ref).get("Config") or {}
    return list(cfg.get("Entrypoint") or []), list(cfg.get("Cmd") or [])


def image_has(ref: str, path: str) -> bool:
    """Whether `path` exists in the image's filesystem (checked in a created, never started
    container)."""
    api = client().api
    try:
        c = api.create_container(
            ref, entrypoint=["/koyra-never-run"], command=[], network_disabled=True
        )
    except docker.errors.APIError as exc:
        raise _api_error(f"Cannot inspect the filesystem of {ref}", exc) from exc
    try:
        stream, _ = api.get_archive(c["Id"], path)
        if hasattr(stream, "close"):
            stream.close()
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        raise _api_error(f"Cannot inspect the filesystem of {ref}", exc) from exc
    finally:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(c["Id"], force=True)


def push(
    *,
    ref: str,
    on_line: LineCallback,
    on_quiet: QuietCallback | None = None,
    auth: dict[str, str] | None = None,
) -> str:
    """Push to the registry, reading every chunk: an error inside a 200 stream is a failure.
    `auth` ({"username", "password"}) is the registry login, for this push only. Returns the
    registry's digest of the manifest."""
    repo, _, tag = ref.rpartition(":")
    digest: str | None = None
    last_status: dict[str, str] = {}
    try:
        stream = client().api.push(repo, tag=tag, stream=True, decode=True, auth_config=auth)
        for chunk in _paced(stream, on_quiet):
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise EngineError(f"push to the registry failed: {detail}")
            aux = chunk.get("aux") or {}
            if aux.get("Digest"):
                digest = aux["Digest"]
            status = chunk.get("status")
            layer = chunk.get("id", "")
            # Progress chunks repeat many times a second: log each layer's state changes only.
            if status and last_status.get(layer) != status and "progressDetail" not in chunk:
                last_status[layer] = status
                on_line(f"{layer + ': ' if layer else ''}{status}")
    except docker.errors.APIError as exc:
        raise _api_error("push to the registry failed", exc) from exc
    except requests.exceptions.RequestException as exc:
        raise EngineError(f"push to the registry failed: {exc}") from exc
    if not digest:
        raise EngineError("push to the registry ended without a digest")
    return digest


def image_remove(ref: str) -> bool:
    """Remove a tag. Forced, because Swarm keeps stopped containers of old tasks (task
    history) and they hold their image: the tag goes now, the layers once they do. An
    image a running container uses is never deleted, forced or not."""
    try:
        client().images.remove(ref, force=True, noprune=False)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as exc:
        raise _api_error(f"Cannot remove image {ref}", exc) from exc


# --- One-off tasks --------------------------------------------------------------------------


def run_job(
    spec: ServiceSpec,
    *,
    on_line: LineCallback,
    on_quiet: QuietCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    timeout: float = 1800,
) -> int:
    """Run `spec` once as a Swarm job on this node (so it gets Swarm secrets on tmpfs and the
    overlay network, like the app's own tasks), stream its output, return its exit code. The
    job service is removed afterwards, whatever happened."""
    spec.job = True
    spec.constraints = [*spec.constraints, f"node.id=={client().info()['Swarm']['NodeID']}"]
    service_remove(spec.name)  # a leftover of a crashed run
    service_apply(spec)
    deadline = time.monotonic() + timeout
    try:
        task = _job_task(spec.name, should_stop, deadline, lambda t: _container_id(t))
        cid = _container_id(task)
        if cid:
            _follow_logs(
                cid, on_line, on_quiet, lambda: should_stop() or time.monotonic() > deadline
            )
        task = _job_task(spec.name, should_stop, deadline, _task_ended)
        status = task.get("Status", {})
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        if code is None:
            raise EngineError(f"the one-off task did not run: {status.get('Err') or status}")
        return int(code)
    finally:
        service_remove(spec.name)


def _container_id(task: dict[str, Any]) -> str | None:
    cid: str | None = (task.get("Status", {}).get("ContainerStatus") or {}).get("ContainerID")
    return cid


def _task_ended(task: dict[str, Any]) -> bool:
    return task.get("Status", {}).get("State") in ("complete", "failed", "rejected", "shutdown")


def _job_task(
    name: str,
    should_stop: Callable[[], bool],
    deadline: float,
    ready: Callable[[dict[str, Any]], object],
) -> dict[str, Any]:
    while True:
        tasks = service_tasks(name)
        for t in tasks:
            if ready(t) or _task_ended(t):
                return t
        if should_stop():
            raise Aborted("one-off task stopped")
        if time.monotonic() > deadline:
            raise Aborted("one-off task timed out")
        time.sleep(0.3)


def _follow_logs(
    container_id: str,
    on_line: LineCallback,
    on_quiet: QuietCallback | None,
    should_stop: Callable[[], bool],
) -> None:
    """Stream a container's output until it exits; kill it when should_stop says so."""
    try:
        container = client().containers.get(container_id)
    except docker.errors.APIError:
        return
    stopper = threading.Event()

    def _stop_when_asked() -> None:
        while not stopper.wait(0.5):
            if should_stop():
                with contextlib.suppress(docker.errors.APIError):
                    container.kill()
                return

    threading.Thread(target=_stop_when_asked, daemon=True).start()
    out = _LineBuffer(on_line)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        for chunk in _paced(container.logs(stream=True, follow=True), on_quiet):
            out.feed(decoder.decode(chunk))
    except docker.errors.APIError:
        pass
    finally:
        stopper.set()
        out.flush()


# --- Runtime logs -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceLogLine:
    task: str  # the task's id
    time: str  # the engine's RFC 3339 timestamp of the line
    text: str


class ServiceLogs:
    """A service's output as it comes (tail then follow), one ServiceLogLine per line.
    Iterating blocks; close() from another thread cuts the engine's stream."""

    def __init__(self, name: str, *, tail: int, since: str | None = None) -> None:
        self.name = name
        self.tail = tail
        self.since = since
        self.handle = _Abortable()

    def __iter__(self) -> Iterator[ServiceLogLine]:
        api = docker.from_env(timeout=60, version=client().api.api_version).api
        # service_logs reads the multiplexed stream itself (no _stream_helper): keep its
        # response so close() can shut the socket from another thread.
        original: Callable[..., Any] = api._get_result_tty  # type: ignore[attr-defined]

        def _keep(stream: bool, res: requests.Response, is_tty: bool) -> Any:
            self.handle.response = res
            return original(stream, res, is_tty)

        api._get_result_tty = _keep  # type: ignore[attr-defined]  # as above
        kwargs: dict[str, Any] = {"since": self.since} if self.since else {}
        try:
            frames = api.service_logs(
                self.name,
                details=True,
                follow=True,
                stdout=True,
                stderr=True,
                timestamps=True,
                tail=str(self.tail),
                is_tty=False,
                **kwargs,
            )
            for frame in frames:
                if self.handle.aborted:
                    return
                yield from _log_frame(frame)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            if not self.handle.aborted:
                raise _api_error(f"Cannot follow the logs of {self.name}", exc) from exc
        except (OSError, ValueError, AttributeError):
            if not self.handle.aborted:  # the socket shut under a read is how close() works
                raise
        finally:
            api.close()

    def close(self) -> None:
        self.handle.abort()


def _log_frame(frame: bytes) -> Iterator[ServiceLogLine]:
    """One frame of `service_logs(details=True, timestamps=True)`: `<time> <details> <text>`,
    the details `com.docker.swarm.node.id=..,com.docker.swarm.service.id=..,..task.id=..`."""
    for raw in frame.decode(errors="replace").splitlines():
        stamp, _, rest = raw.partition(" ")
        details, _, text = rest.partition(" ")
        attrs = dict(kv.partition("=")[::2] for kv in details.split(","))
        yield ServiceLogLine(attrs.get("com.docker.swarm.task.id", ""), stamp, text)


# --- Swarm secrets ------------------------------------------------------------------------


def secret_ensure(name: str, value: str, labels: dict[str, str]) -> str:
    """A Swarm secret (kept encrypted in the raft log, mounted on tmpfs) with this exact name;
    names are versioned by the caller, so an existing one already holds this value."""
    for s in client().secrets.list(filters={"name": name}):
        if s.name == name:
            return _secret_id(s)
    try:
        return _secret_id(client().secrets.create(name=name, data=value.encode(), labels=labels))
    except docker.errors.APIError as exc:
        # The value is never part of the message; Docker's own error text does not carry it.
        raise _api_error(f"Cannot create Swarm secret {name}", exc) from exc


def _secret_id(secret: docker.models.secrets.Secret) -> str:
    # docker-py's models read the id from attrs and so type it as optional; the engine always
    # sends one for a secret it lists or has just created.
    if secret.id is None:
        raise EngineError(f"Docker returned Swarm secret {secret.name} without an id")
    return secret.id


def secrets_list(label: str) -> list[dict[str, Any]]:
    return [
        {"id": s.id, "name": s.name, "labels": s.attrs["Spec"].get("Labels", {})}
        for s in client().secrets.list(filters={"label": label})
    ]


def secret_remove(secret_id: str) -> bool:
    try:
        client().api.remove_secret(secret_id)
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError:
        return False  # still used by a task: removed on a later pass


# --- Disk -----------------------------------------------------------------------------------


def disk_usage(volume: str) -> dict[str, int]:
    """Bytes used by images, by `volume` (the registry's blobs) and by the build cache."""
    try:
        df = client().df()
    except docker.errors.APIError as exc:
        raise _api_error("Cannot read disk usage", exc) from exc
    vol: dict[str, Any] = next((v for v in df.get("Volumes") or [] if v["Name"] == volume), {})
    cache = sum(b.get("Size", 0) for b in df.get("BuildCache") or [])
    return {
        "images": int(df.get("LayersSize") or 0),
        "registry": int((vol.get("UsageData") or {}).get("Size") or 0),
        "build_cache": int(cache),
    }


def images_prune_dangling() -> int:
    """Remove dangling images; returns the bytes freed."""
    try:
        return int(client().images.prune(filters={"dangling": True}).get("SpaceReclaimed") or 0)
    except docker.errors.APIError as exc:
        raise _api_error("Cannot prune dangling images", exc) from exc


def build_cache_prune(keep_bytes: int) -> int:
    """Trim BuildKit's cache to keep_bytes, least recently used first. (The classic builder's
    cache is the parent layers of tagged images, which retention keeps for the latest
    releases.) Returns the bytes freed."""
    try:
        res = client().api.prune_builds(keep_storage=keep_bytes)
    except docker.errors.APIError as exc:
        raise _api_error("Cannot prune the build cache", exc) from exc
    return int((res or {}).get("SpaceReclaimed") or 0)


def registry_gc(service: str, config: str) -> str:
    """Run the registry's garbage collector in its container, so deleted manifests' blobs are
    really freed. Returns its output's last line."""
    try:
        containers = client().containers.list(
            filters={"label": f"com.docker.swarm.service.name={service}", "status": "running"}
        )
    except docker.errors.APIError as exc:
        raise _api_error("Cannot find the registry container", exc) from exc
    if not containers:
        raise EngineError(f"no running container of {service} on this node to collect garbage")
    res = containers[0].exec_run(["/bin/registry", "garbage-collect", "--delete-untagged", config])
    output = cast(bytes, res.output)  # not streamed: the whole output at once
    out = output.decode(errors="replace").strip().splitlines()
    if res.exit_code != 0:
        raise EngineError(f"registry garbage-collect failed: {' '.join(out[-3:])}")
    return out[-1] if out else ""
