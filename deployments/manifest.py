"""`.paas/app.yaml`: parse and validate (SPEC §2). Every error names the file, line and field."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from apps.validators import DOMAIN_RE, SECRET_KEY_RE
from deployments.release_spec import HealthcheckSpec

MANIFEST_PATH = ".paas/app.yaml"
PUBLIC_PREFIXES = (
    "NEXT_PUBLIC_",
    "VITE_",
    "REACT_APP_",
    "PUBLIC_",
    "NUXT_PUBLIC_",
    "GATSBY_",
    "EXPO_PUBLIC_",
)
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b?)$", re.IGNORECASE)
_TOP = {"version", "build", "env", "secrets", "release", "predeploy", "run"}
_BUILD = {"context", "dockerfile", "args"}
_RUN = {"port", "replicas", "healthcheck", "domains", "resources"}
_HEALTH = {"path", "cmd", "interval", "timeout", "retries", "start_period"}
_RESOURCES = {"memory", "cpus"}


class ManifestError(Exception):
    """The manifest is invalid; str() is a message for the deploy log."""


@dataclass
class Manifest:
    context: str = "."
    dockerfile: str = "Dockerfile"
    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    predeploy: list[str] = field(default_factory=list)
    port: int = 8000
    replicas: int = 1
    healthcheck: HealthcheckSpec | None = None
    domains: list[str] = field(default_factory=list)
    memory: int | None = None
    nano_cpus: int | None = None
    present: bool = False

    def build_args(self) -> dict[str, str]:
        """What reaches `docker build`: the declared args plus public-prefixed env. Nothing else
        from env and nothing from secrets, ever."""
        public = {k: v for k, v in self.env.items() if k.startswith(PUBLIC_PREFIXES)}
        return {**public, **self.args}


def _line(root: yaml.Node | None, path: tuple) -> int | None:
    node = root
    for key in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            node = node.value[key] if key < len(node.value) else None
        else:
            return None
        if node is None:
            return None
    return node.start_mark.line + 1 if node is not None else None


class _Checker:
    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def fail(self, path: tuple, message: str) -> ManifestError:
        where = MANIFEST_PATH
        line = _line(self.root, path)
        if line:
            where += f", line {line}"
        name = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path)
        name = name.replace(".[", "[") or "(top level)"
        return ManifestError(f"{where}: {name}: {message}")

    def mapping(self, value, path: tuple, allowed: set[str] | None = None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping of names to values")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(path, f"key {key!r} must be a string")
            if allowed is not None and key not in allowed:
                raise self.fail(
                    (*path, key), f"unknown field; expected one of {', '.join(sorted(allowed))}"
                )
        return value

    def scalars(self, value, path: tuple) -> dict[str, str]:
        out = {}
        for key, v in self.mapping(value, path).items():
            if not SECRET_KEY_RE.match(key):
                raise self.fail((*path, key), "is not a valid variable name (letters, digits, _)")
            if isinstance(v, (dict, list)) or v is None:
                raise self.fail((*path, key), "must be a string, number or boolean")
            out[key] = str(v).lower() if isinstance(v, bool) else str(v)
        return out

    def commands(self, value, path: tuple) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, "must be a list of shell commands")
        for i, cmd in enumerate(value):
            if not isinstance(cmd, str) or not cmd.strip():
                raise self.fail((*path, i), "must be a non-empty command string")
        return [c.strip() for c in value]

    def integer(self, value, path: tuple, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(path, f"must be a whole number from {lo} to {hi}")
        return value

    def rel_path(self, value, path: tuple) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, "must be a relative path")
        p = PurePosixPath(value)
        if p.is_absolute() or ".." in p.parts:
            raise self.fail(path, "must be a path inside the repository (no leading / or ..)")
        return str(p)


def parse_memory(text) -> int:
    m = _MEMORY_RE.match(str(text).strip())
    if not m:
        raise ValueError(text)
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def parse(text: str | None) -> Manifest:
    """A Manifest from the file's text; None (no file) gives the defaults."""
    if text is None:
        return Manifest()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{MANIFEST_PATH}{where}: not valid YAML: {problem}") from None
    c = _Checker(root)
    data = c.mapping(data, (), _TOP)
    m = Manifest(present=True)
    if "version" in data and data["version"] != 1:
        raise c.fail(("version",), "must be 1")

    build = c.mapping(data.get("build"), ("build",), _BUILD)
    if "context" in build:
        m.context = c.rel_path(build["context"], ("build", "context"))
    if "dockerfile" in build:
        m.dockerfile = c.rel_path(build["dockerfile"], ("build", "dockerfile"))
    m.args = c.scalars(build.get("args"), ("build", "args"))
    m.env = c.scalars(data.get("env"), ("env",))

    secrets = data.get("secrets") or []
    if not isinstance(secrets, list):
        raise c.fail(("secrets",), "must be a list of secret names")
    for i, name in enumerate(secrets):
        if not isinstance(name, str) or not SECRET_KEY_RE.match(name):
            raise c.fail(("secrets", i), "must be a variable name (letters, digits, _)")
        if name.startswith(PUBLIC_PREFIXES):
            raise c.fail(
                ("secrets", i),
                f"{name} has a public prefix, so bundlers would put it in client code; "
                "rename it, or move it to env if it is not secret",
            )
        if name in m.env:
            raise c.fail(("secrets", i), f"{name} is also in env; keep it in one place")
    if len(set(secrets)) != len(secrets):
        raise c.fail(("secrets",), "lists a name twice")
    m.secrets = list(secrets)
    m.release = c.commands(data.get("release"), ("release",))
    m.predeploy = c.commands(data.get("predeploy"), ("predeploy",))
    _parse_run(c, c.mapping(data.get("run"), ("run",), _RUN), m)
    return m


def _parse_run(c: _Checker, run: dict, m: Manifest) -> None:
    if "port" in run:
        m.port = c.integer(run["port"], ("run", "port"), 1, 65535)
    if "replicas" in run:
        m.replicas = c.integer(run["replicas"], ("run", "replicas"), 1, 100)
    if run.get("healthcheck") is not None:
        h = c.mapping(run["healthcheck"], ("run", "healthcheck"), _HEALTH)
        if ("path" in h) == ("cmd" in h):
            raise c.fail(("run", "healthcheck"), "give exactly one of path or cmd")
        hc: HealthcheckSpec = {"interval": 3, "timeout": 3, "retries": 3, "start_period": 10}
        for key in ("interval", "timeout", "retries", "start_period"):
            if key in h:
                hc[key] = c.integer(
                    h[key], ("run", "healthcheck", key), 0 if key == "start_period" else 1, 600
                )
        if "path" in h:
            p = h["path"]
            if not isinstance(p, str) or not re.match(r"^/[A-Za-z0-9._~/?=&%-]*$", p):
                raise c.fail(("run", "healthcheck", "path"), "must be a URL path like /healthz")
            hc["path"] = p
        else:
            if not isinstance(h["cmd"], str) or not h["cmd"].strip():
                raise c.fail(("run", "healthcheck", "cmd"), "must be a non-empty command")
            hc["cmd"] = h["cmd"].strip()
        m.healthcheck = hc
    domains = run.get("domains") or []
    if not isinstance(domains, list):
        raise c.fail(("run", "domains"), "must be a list of host names")
    for i, d in enumerate(domains):
        if not isinstance(d, str) or not DOMAIN_RE.match(d):
            raise c.fail(("run", "domains", i), f"{d!r} is not a host name like shop.example.com")
    m.domains = list(domains)
    res = c.mapping(run.get("resources"), ("run", "resources"), _RESOURCES)
    if "memory" in res:
        try:
            m.memory = parse_memory(res["memory"])
        except ValueError:
            raise c.fail(("run", "resources", "memory"), "must be a size like 512M or 1G") from None
        if m.memory < 6 * 1024**2:
            raise c.fail(("run", "resources", "memory"), "must be at least 6M")
    if "cpus" in res:
        try:
            cpus = float(res["cpus"])
        except (TypeError, ValueError):
            cpus = 0
        if not 0 < cpus <= 256:
            raise c.fail(("run", "resources", "cpus"), 'must be a number of CPUs like "0.5"')
        m.nano_cpus = int(cpus * 1e9)


def load(checkout: Path) -> Manifest:
    path = checkout / MANIFEST_PATH
    if path.is_symlink():
        raise ManifestError(f"{MANIFEST_PATH}: must be a regular file, not a symlink")
    if not path.exists():
        return Manifest()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{MANIFEST_PATH}: cannot be read ({exc})") from None
    return parse(text)
