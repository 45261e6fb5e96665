"""A second Docker engine, in a network namespace of its own, joined to the test swarm as a
worker: a real two-node cluster on one machine. Used by tests/e2e/test_nodes_e2e.py only (a
module fixture: every other test keeps a one-node swarm).

What it takes, and why:
- The namespace is entered with `nsenter --net` (never `ip netns exec`, which remounts /sys
  and so unmounts the cgroup hierarchies dockerd needs), plus a private mount namespace with
  a tmpfs on /run/docker and its own UTS name (the node's hostname, `koyra-node2`).
- dockerd gets its own data-root, exec-root, pidfile and socket under one directory, its own
  cgroup parent, and no default bridge; its iptables rules live in its own namespace.
- The test swarm advertises 127.0.0.1 (scripts/lib.sh). Inside the namespace 127.0.0.1 is
  therefore routed to the host over the veth, not kept as the namespace's loopback: the
  manager's ports (2377, 7946, VXLAN 4789) and the registry's (KOYRA_REGISTRY, 127.0.0.1:5000)
  are where the worker expects them, with nothing configured in the engines themselves. Both
  ends accept a 127/8 address on the veth (route_localnet, on the veth and in the namespace
  only). A cluster set up as the README says advertises a routable address instead.
- The host's packets to the node leave from 127.0.0.1 too (a route with that source), not
  from the veth's address: each engine's VXLAN device learns, and drops a packet whose outer
  source is not the address its peer advertised (a static entry is never moved), so with the
  veth's address the worker's tasks received nothing over the overlay network (Traefik could
  not reach them) while the control plane, gossip included, worked.
- Teardown leaves the swarm, removes the node from the manager, stops dockerd (and its
  containerd), deletes the veth, the namespace and the data, whatever failed before. A
  leftover of a crashed run (same fixed names) is removed first.

Needs root, iproute2, util-linux (nsenter, unshare) and docker.io's dockerd: provision.sh."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker

NETNS = "koyra-node2"
HOSTNAME = "koyra-node2"
VETH_HOST, VETH_NODE = "koyra-n2h", "koyra-n2n"
HOST_IP, NODE_IP = "100.64.213.1", "100.64.213.2"  # shared address space: no LAN or Docker pool
ROOT = Path("/tmp/koyra-node2")


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def _in_ns(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run("nsenter", f"--net=/run/netns/{NETNS}", *argv, check=check)


class SecondNode:
    def __init__(self, manager: docker.DockerClient) -> None:
        self.manager = manager
        self.sock = ROOT / "docker.sock"
        self.pidfile = ROOT / "docker.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        self.node_id = ""

    @property
    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=f"unix://{self.sock}", timeout=60)

    # --- up ----------------------------------------------------------------------------------

    def start(self) -> None:
        self.stop()  # a crashed run's leftovers
        ROOT.mkdir(parents=True)
        _run("ip", "netns", "add", NETNS)
        _run("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NODE)
        _run("ip", "link", "set", VETH_NODE, "netns", NETNS)
        _run("sysctl", "-q", "-w", f"net.ipv4.conf.{VETH_HOST}.route_localnet=1")
        _run("ip", "addr", "add", f"{HOST_IP}/30", "dev", VETH_HOST)
        _run("ip", "link", "set", VETH_HOST, "up")
        _run("ip", "route", "add", f"{NODE_IP}/32", "dev", VETH_HOST, "src", "127.0.0.1")
        _in_ns("sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1")
        _run("ip", "-n", NETNS, "link", "set", "lo", "up")
        _run("ip", "-n", NETNS, "addr", "del", "127.0.0.1/8", "dev", "lo")
        _run("ip", "-n", NETNS, "addr", "add", f"{NODE_IP}/30", "dev", VETH_NODE)
        _run("ip", "-n", NETNS, "link", "set", VETH_NODE, "up")
        _run("ip", "-n", NETNS, "route", "add", "default", "via", HOST_IP)
        _run("ip", "-n", NETNS, "route", "add", "127.0.0.1/32", "via", HOST_IP, "dev", VETH_NODE)
        self.start_engine()

    def start_engine(self) -> None:
        """dockerd in the namespace, on the data start() made: after stop_engine() the node
        comes back with its identity and swarm state and rejoins as the same node."""
        argv = [
            "nsenter", f"--net=/run/netns/{NETNS}",
            "unshare", "--uts", "--mount", "--propagation", "private", "--",
            # $0 is the hostname; the rest is dockerd's argv: no value is interpolated.
            "sh", "-c", 'hostname "$0" && mount -t tmpfs -o mode=0711 koyra-node2 /run/docker '
            '&& exec "$@"', HOSTNAME,
            "dockerd",
            f"--data-root={ROOT / 'data'}", f"--exec-root={ROOT / 'exec'}",
            f"--pidfile={self.pidfile}", f"--host=unix://{self.sock}",
            "--bridge=none", "--cgroup-parent=/koyra-node2",
        ]  # fmt: skip
        with open(ROOT / "dockerd.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self._wait(lambda: self.client.ping(), 60, "the second dockerd to answer")

    def join(self) -> str:
        token = self.manager.swarm.attrs["JoinTokens"]["Worker"]
        self.client.swarm.join(
            remote_addrs=[f"{HOST_IP}:2377"], join_token=token, advertise_addr=NODE_IP
        )
        self.node_id = self.client.info()["Swarm"]["NodeID"]
        self.wait_state("ready", 60)
        return self.node_id

    def wait_state(self, state: str, timeout: float) -> float:
        """Until the manager reports this node `state` (ready, down); returns how long it took."""
        t0 = time.monotonic()
        self._wait(
            lambda: self.manager.nodes.get(self.node_id).attrs["Status"]["State"] == state,
            timeout,
            f"the second node to be {state}",
        )
        return time.monotonic() - t0

    # --- down --------------------------------------------------------------------------------

    def stop_engine(self) -> None:
        """Stop the node's dockerd (SIGTERM, as `systemctl stop docker` does) and keep
        everything else: its data, its swarm identity, the namespace."""
        self._stop_dockerd()

    def stop(self) -> None:
        """Everything start() and join() made, gone; each step runs whatever the others did."""
        if self.sock.exists():
            with contextlib.suppress(Exception):
                self.client.swarm.leave(force=True)
        for n in self.manager.nodes.list():
            ours = n.id == self.node_id or n.attrs["Description"].get("Hostname") == HOSTNAME
            if ours and n.attrs["Spec"].get("Role") == "worker":
                with contextlib.suppress(docker.errors.APIError):
                    n.remove(force=True)
        self._stop_dockerd()
        _run("ip", "link", "del", VETH_HOST, check=False)
        _run("ip", "netns", "del", NETNS, check=False)
        shutil.rmtree(ROOT, ignore_errors=True)
        self.node_id = ""

    def _stop_dockerd(self) -> None:
        pid = None
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pidfile.read_text().strip())
        if pid is None and self.proc is not None:
            pid = self.proc.pid
        if pid is None or not _ours(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            self.proc = None

    @staticmethod
    def _wait(predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except Exception as exc:  # not up yet
                last = exc
            time.sleep(0.3)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _ours(pid: int) -> bool:
    """The pid is (still) this fixture's dockerd or its shell, not a recycled number."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"--pidfile={ROOT / 'docker.pid'}".encode() in argv


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (our own child, not reaped yet) is dead too.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True
