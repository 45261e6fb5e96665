"""What Koyra creates in the Swarm besides apps (SPEC §5): network, registry, Traefik."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from deployments import registry_auth
from deployments.boundaries import engine, registry

REGISTRY_SERVICE = "koyra-registry"
TRAEFIK_SERVICE = "koyra-traefik"
REGISTRY_DATA = "/var/lib/registry"
REGISTRY_VOLUME = "koyra-registry-data"


def registry_port() -> int:
    host_port = settings.KOYRA_REGISTRY.rsplit("/", 1)[0]
    _, _, port = host_port.rpartition(":")
    return int(port) if port.isdigit() else 5000


def registry_spec(htpasswd: dict[str, str]) -> engine.ServiceSpec:
    """`htpasswd` is the Swarm secret with Koyra's login (registry_auth.htpasswd_secret):
    every API call, push and pull must log in, so no app (nor a build) reads or writes
    another's images. Deleting manifests is how retention frees space, and only Koyra can."""
    return engine.ServiceSpec(
        name=REGISTRY_SERVICE,
        image=settings.KOYRA_REGISTRY_IMAGE,
        labels={"koyra.role": "registry"},
        env={
            # The filesystem root is pinned so registry:2 and other builds of the registry
            # keep blobs in the same volume.
            "REGISTRY_STORAGE_DELETE_ENABLED": "true",
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": REGISTRY_DATA,
            "REGISTRY_HTTP_ADDR": "0.0.0.0:5000",
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_REALM": registry_auth.REALM,
            "REGISTRY_AUTH_HTPASSWD_PATH": registry_auth.HTPASSWD_PATH,
        },
        # Every container reaches the published port through its gateway anyway: the login,
        # not the network, is what keeps apps out.
        networks=[settings.KOYRA_NETWORK],
        mounts=[f"{REGISTRY_VOLUME}:{REGISTRY_DATA}"],
        ports={registry_port(): 5000},
        constraints=["node.role==manager"],
        secrets=[htpasswd],
    )


def traefik_spec() -> engine.ServiceSpec:
    net = settings.KOYRA_NETWORK
    args = [
        "--providers.swarm=true",
        "--providers.swarm.endpoint=unix:///var/run/docker.sock",
        "--providers.swarm.exposedByDefault=false",
        f"--providers.swarm.network={net}",
        f"--providers.swarm.refreshSeconds={settings.KOYRA_TRAEFIK_REFRESH_SECONDS}",
        "--entryPoints.web.address=:80",
        # X_Auth_User would reach a WSGI/CGI app as X-Auth-User: drop such aliasing headers
        # (Traefik 3.7+; its own warning asks for it).
        "--entryPoints.web.http.aliasHeadersStrategy=delete",
        "--ping=true",
        "--log.level=INFO",
    ]
    ports = {settings.KOYRA_HTTP_PORT: 80}
    mounts = ["/var/run/docker.sock:/var/run/docker.sock:ro"]
    if settings.KOYRA_ACME_EMAIL:
        args += [
            "--entryPoints.websecure.address=:443",
            "--entryPoints.websecure.http.aliasHeadersStrategy=delete",
            "--entryPoints.web.http.redirections.entryPoint.to=websecure",
            "--entryPoints.web.http.redirections.entryPoint.scheme=https",
            f"--certificatesResolvers.le.acme.email={settings.KOYRA_ACME_EMAIL}",
            "--certificatesResolvers.le.acme.storage=/data/acme.json",
            "--certificatesResolvers.le.acme.httpChallenge.entryPoint=web",
        ]
        ports[settings.KOYRA_HTTPS_PORT] = 443
        mounts.append("koyra-traefik-data:/data")
    return engine.ServiceSpec(
        name=TRAEFIK_SERVICE,
        image=settings.KOYRA_TRAEFIK_IMAGE,
        labels={"koyra.role": "ingress"},
        # Flags only: the official image's entrypoint prefixes `traefik` to them, and an image
        # whose ENTRYPOINT is the binary takes them as they are.
        args=args,
        networks=[net],
        mounts=mounts,
        ports=ports,
        constraints=["node.role==manager"],
    )


def cluster_bootstrap(*, ingress: bool = True, say: Callable[[str], None] = print) -> bool:
    """Idempotent: swarm, network, registry, Traefik; returns once the registry answers (at
    most KOYRA_REGISTRY_WAIT_SECONDS). Returns False when a part could not be made or the
    registry did not answer (each named in what `say` printed); the other parts are still made."""
    ok = True
    say(f"swarm: {engine.swarm_ensure(advertise_addr=settings.KOYRA_SWARM_ADVERTISE_ADDR)}")
    created = engine.network_ensure(settings.KOYRA_NETWORK)
    say(f"network {settings.KOYRA_NETWORK}: {'created' if created else 'exists'}")
    htpasswd = registry_auth.htpasswd_secret(registry_auth.ensure())
    say(f"registry login: {registry.auth_path()} (secret {htpasswd['name']})")
    parts = [("registry", registry_spec(htpasswd))]
    if ingress:
        parts.append(("traefik", traefik_spec()))
    for label, spec in parts:
        try:
            engine.image_ensure(spec.image)
        except engine.EngineError as exc:
            ok = False
            var = "KOYRA_REGISTRY_IMAGE" if label == "registry" else "KOYRA_TRAEFIK_IMAGE"
            say(
                f"{label}: skipped: {exc}. Load or build that image on this node, or set {var} "
                "to one that is here."
            )
            continue
        say(f"{label} ({spec.name}, {spec.image}): {engine.service_apply(spec)}")
        if label == "registry":
            ok = _registry_answers(say) and ok
            registry_auth.prune_secrets(keep=htpasswd["name"])
    return ok


def _loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host in ("::1", "[::1]")


def join_instructions() -> list[str]:
    """What a new node runs to join this swarm as a worker and pull Koyra's images: the join
    command (its token is a credential: `docker swarm join-token --rotate worker` voids it)
    and the registry trust step. Koyra's registry speaks plain HTTP (with Koyra's login), so
    every node, this one included, lists KOYRA_REGISTRY as an insecure registry (SPEC §5,
    README "More nodes"); an address only this node can reach is said to be one."""
    try:
        join = engine.swarm_join()
    except engine.EngineError as exc:
        return [f"nodes: {exc}"]
    lines = [
        f"nodes: to add a worker, run on it: docker swarm join --token {join['token']} "
        f"{join['addr']}"
    ]
    manager = join["addr"].rsplit(":", 1)[0]
    if _loopback(manager):
        lines.append(
            f"nodes: the swarm advertises {manager}, which no other node can reach: for more "
            "nodes, make the swarm with KOYRA_SWARM_ADVERTISE_ADDR set to this node's address"
        )
    host = settings.KOYRA_REGISTRY.rsplit(":", 1)[0]
    if _loopback(host):
        lines.append(
            f"nodes: KOYRA_REGISTRY={settings.KOYRA_REGISTRY} is this node's loopback: other "
            f"nodes cannot pull from it. Set KOYRA_REGISTRY={manager}:{registry_port()} (an "
            "address every node reaches), then run bootstrap_cluster again"
        )
    else:
        lines.append(
            f'nodes: on every node (this one too) add "insecure-registries": '
            f'["{settings.KOYRA_REGISTRY}"] to /etc/docker/daemon.json, then '
            "`systemctl reload docker` (plain HTTP with Koyra's login: firewall port "
            f"{registry_port()} to the cluster's nodes)"
        )
    return lines


def _registry_answers(say: Callable[[str], None]) -> bool:
    """The first push right after a bootstrap must find the registry's task up: wait for it."""
    try:
        registry.wait_ready(settings.KOYRA_REGISTRY_WAIT_SECONDS, on_wait=say)
    except registry.RegistryError as exc:
        say(
            f"registry: {exc}. Its task is not up: see `docker service ps {REGISTRY_SERVICE} "
            f"--no-trunc`; KOYRA_REGISTRY must be the address where it is published."
        )
        return False
    say(f"registry: answers at {settings.KOYRA_REGISTRY}")
    return True
