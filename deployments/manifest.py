"""`.paas/app.yaml`: parse and validate (SPEC §2). Every error names the file, line and field.

The file is untrusted: at most 64 KiB, read only as a regular file inside the checkout, parsed
by a loader that refuses aliases and anchors (a 400-byte alias bomb expands to gigabytes),
merge keys, duplicate keys and deep nesting; user values are quoted in messages truncated."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml
from django.core.exceptions import ValidationError

from apps.validators import (
    DOMAIN_RE,
    MAX_CONSTRAINTS,
    SECRET_KEY_RE,
    control_character,
    matches,
    placement_constraint,
    quote,
)
from deployments import checkout
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
_MEMORY_RE = re.compile(r"(\d{1,15}(?:\.\d{1,9})?)\s*([kmgt]?)(?:i?b?)", re.I | re.ASCII)
_CPUS_RE = re.compile(r"\d{1,3}(?:\.\d{1,9})?", re.ASCII)
MAX_BYTES = checkout.MAX_FILE_BYTES
MAX_DEPTH = 20
MAX_MEMORY = 1024**4  # 1T
MIN_CPUS = 0.001
_TOP = {"version", "build", "env", "secrets", "release", "predeploy", "run"}
_BUILD = {"context", "dockerfile", "args"}
_RUN = {"port", "replicas", "healthcheck", "domains", "resources", "constraints"}
_HEALTH = {"path", "cmd", "interval", "timeout", "retries", "start_period"}
_RESOURCES = {"memory", "cpus"}


class ManifestError(Exception):
    """The manifest is invalid; str() is a message for the deploy log."""


class _Loader(yaml.SafeLoader):
    """SafeLoader for untrusted text: every node written out once, keys unique and scalar."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None,
                None,
                "aliases and anchors (*name, &name) are not allowed; write the value out",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            mark = key_node.start_mark
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(
                    None, None, "merge keys (<<) are not allowed; write the fields out", mark
                )
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain name, not a list or mapping", mark
                )
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {quote(key)} (first on line {seen[key]}); YAML would keep "
                    "only the last: keep one",
                    mark,
                )
            seen[key] = mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _read_yaml(text: str) -> tuple[yaml.Node | None, object]:
    """The document's node tree (for line numbers) and its data, composed once."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    return root, data


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
    constraints: list[str] = field(default_factory=list)  # Swarm placement, normalized
    present: bool = False

    def build_args(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """What reaches `docker build`: the declared args plus public-prefixed env (`env`: the
        runtime env when the app's own env vars are merged over the manifest's). Nothing
        else from env and nothing from secrets, ever."""
        env = self.env if env is None else env
        public = {k: v for k, v in env.items() if k.startswith(PUBLIC_PREFIXES)}
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


_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,60}")


def _part(p: object) -> str:
    """One step of a field's path as a message shows it: a name, [index], or a quoted key."""
    if isinstance(p, int) and not isinstance(p, bool):
        return f"[{p}]"
    return p if isinstance(p, str) and _PLAIN_KEY_RE.fullmatch(p) else quote(p)


class _Checker:
    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def fail(self, path: tuple, message: str) -> ManifestError:
        where = MANIFEST_PATH
        line = _line(self.root, path)
        if line:
            where += f", line {line}"
        name = ".".join(_part(p) for p in path)
        name = name.replace(".[", "[") or "(top level)"
        return ManifestError(f"{where}: {name}: {message}")

    def mapping(self, value, path: tuple, allowed: set[str] | None = None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping of names to values")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(path, f"key {quote(key)} must be a string")
            if allowed is not None and key not in allowed:
                raise self.fail(
                    (*path, key), f"unknown field; expected one of {', '.join(sorted(allowed))}"
                )
        return value

    def scalars(self, value, path: tuple) -> dict[str, str]:
        out = {}
        for key, v in self.mapping(value, path).items():
            if not matches(SECRET_KEY_RE, key):
                raise self.fail((*path, key), "is not a valid variable name (letters, digits, _)")
            if not isinstance(v, (str, int, float, bool)):
                raise self.fail((*path, key), "must be a string, number or boolean")
            out[key] = str(v).lower() if isinstance(v, bool) else str(v)
            self.text(out[key], (*path, key))
        return out

    def text(self, value: str, path: tuple) -> None:
        """Refuse control characters (NUL cannot be in an environment variable at all)."""
        bad = control_character(value)
        if bad:
            raise self.fail(path, f"contains the control character {bad}; remove it")

    def commands(self, value, path: tuple) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, "must be a list of shell commands")
        for i, cmd in enumerate(value):
            if not isinstance(cmd, str) or not cmd.strip():
                raise self.fail((*path, i), "must be a non-empty command string")
            self.text(cmd, (*path, i))
        return [c.strip() for c in value]

    def integer(self, value, path: tuple, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(path, f"must be a whole number from {lo} to {hi}")
        return value

    def rel_path(self, value, path: tuple) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > 1024:
            raise self.fail(path, "must be a relative path")
        self.text(value, path)
        p = PurePosixPath(value)
        if p.is_absolute() or ".." in p.parts:
            raise self.fail(path, "must be a path inside the repository (no leading / or ..)")
        return str(p)


def parse_memory(text) -> int:
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError("not a size")
    m = _MEMORY_RE.fullmatch(str(text).strip()) if len(str(text)) < 40 else None
    if not m:
        raise ValueError("not a size")
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def parse(text: str | None) -> Manifest:
    """A Manifest from the file's text; None (no file) gives the defaults."""
    if text is None:
        return Manifest()
    if len(text.encode(errors="replace")) > MAX_BYTES:
        raise ManifestError(f"{MANIFEST_PATH}: is over {MAX_BYTES // 1024} KiB; keep it short")
    try:
        root, data = _read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = (getattr(exc, "problem", None) or str(exc))[:300]
        raise ManifestError(f"{MANIFEST_PATH}{where}: not valid YAML: {problem}") from None
    except (ValueError, OverflowError, RecursionError) as exc:  # int("9" * 5000), 1e999999
        raise ManifestError(
            f"{MANIFEST_PATH}: a value cannot be read ({type(exc).__name__}: a number too "
            "long or out of range?)"
        ) from None
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
        if not matches(SECRET_KEY_RE, name):
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
        if not matches(DOMAIN_RE, d):
            raise c.fail(
                ("run", "domains", i), f"{quote(d)} is not a host name like shop.example.com"
            )
    if len(set(domains)) != len(domains):
        raise c.fail(("run", "domains"), "lists a host name twice")
    m.domains = list(domains)
    res = c.mapping(run.get("resources"), ("run", "resources"), _RESOURCES)
    if "memory" in res:
        try:
            m.memory = parse_memory(res["memory"])
        except (ValueError, OverflowError):
            raise c.fail(("run", "resources", "memory"), "must be a size like 512M or 1G") from None
        if not 6 * 1024**2 <= m.memory <= MAX_MEMORY:
            raise c.fail(("run", "resources", "memory"), "must be from 6M to 1T")
    if "cpus" in res:
        m.nano_cpus = _nano_cpus(c, res["cpus"])
    m.constraints = _constraints(c, run.get("constraints"))


def _constraints(c: _Checker, value) -> list[str]:
    path: tuple = ("run", "constraints")
    if value is None:
        return []
    if not isinstance(value, list):
        raise c.fail(path, 'must be a list like ["node.labels.tier==web"]')
    if len(value) > MAX_CONSTRAINTS:
        raise c.fail(path, f"lists more than {MAX_CONSTRAINTS} constraints")
    out: list[str] = []
    for i, item in enumerate(value):
        try:
            out.append(placement_constraint(item))
        except ValidationError as exc:
            raise c.fail((*path, i), exc.messages[0]) from None
    if len(set(out)) != len(out):
        raise c.fail(path, "lists a constraint twice")
    return out


def _nano_cpus(c: _Checker, value) -> int:
    path = ("run", "resources", "cpus")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise c.fail(path, 'must be a number of CPUs like "0.5"')
    if isinstance(value, str) and not _CPUS_RE.fullmatch(value.strip()):
        raise c.fail(path, 'must be a number of CPUs like "0.5"')
    cpus = float(value)
    if not MIN_CPUS <= cpus <= 256:  # nan and inf fail too; below MIN_CPUS would be "no limit"
        raise c.fail(path, f'must be a number of CPUs from {MIN_CPUS} to 256, like "0.5"')
    return round(cpus * 1e9)


def load(root: Path) -> Manifest:
    """The checkout's manifest: `.paas` and `app.yaml` must be what git checked out (no
    symlink, a regular file of at most 64 KiB inside the checkout); none gives the defaults."""
    try:
        checkout.no_symlink(root, MANIFEST_PATH)
        path = checkout.inside(root, MANIFEST_PATH, MANIFEST_PATH)
        if not path.exists():
            return Manifest()
        data = checkout.read_regular(path, MANIFEST_PATH, limit=MAX_BYTES)
    except checkout.CheckoutError as exc:
        raise ManifestError(str(exc)) from None
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{MANIFEST_PATH}: is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    return parse(text)
