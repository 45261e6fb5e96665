"""The shape of the code: no import cycles between the project's modules, no oversized module,
no long view function. Read from the source with `ast`: nothing here imports the project."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("koyra", "apps", "deployments", "secrets_vault")

MAX_MODULE_LINES = 450
# Modules allowed over MAX_MODULE_LINES, each with the reason. Keep it short.
LONG_MODULES_ALLOWED = {
    # The Docker boundary: the one adapter between Koyra and the engine API (images, services,
    # secrets, networks, tasks), kept in one file so nothing else talks to Docker.
    "deployments/boundaries/engine.py",
}
MAX_VIEW_LINES = 40


# --- the project's modules -------------------------------------------------------------------


def project_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py of the packages except migrations."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


# --- the import graph ------------------------------------------------------------------------


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that name stands for: the module itself, else its longest prefix
    that is one (pkg.mod.Thing, from `from pkg.mod import Thing`, is pkg.mod; pkg.helper, from
    `from pkg import helper`, is pkg). None for a name outside the project."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imported(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> list[str]:
    """The absolute names an import statement loads (before resolving against the project)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module if _is_package(path) else module.rpartition(".")[0]
        parts = package.split(".") if package else []
        if node.level > len(parts):
            return []  # above the top package: fails at run time, imports nothing of ours
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, node.module] if node.module else parts)
    else:
        base = node.module or ""
    # `from pkg import mod` loads pkg.mod when that is a module; `from pkg import name` loads pkg.
    return [f"{base}.{alias.name}" if alias.name != "*" else base for alias in node.names]


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, dict[str, int]]:
    """module -> {imported project module: line of the first such import}. Every import
    counts, also one inside a function or under `if TYPE_CHECKING:`."""
    modules = project_modules(root, packages)
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported(node, module, path):
                target = _resolve(name, modules)
                if target is not None and target != module:
                    edges[target] = min(edges.get(target, node.lineno), node.lineno)
    return graph


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iterative; each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return sorted(components)


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or around a loop."""
    return [c for c in strongly_connected(graph) if len(c) > 1]


def describe(cycle: list[str], graph: dict[str, dict[str, int]], modules: dict[str, Path]) -> str:
    """The cycle's modules, then each import that ties them, as file:line."""
    members = set(cycle)
    lines = [" <-> ".join(cycle)]
    for module in cycle:
        for target, line in sorted(graph[module].items()):
            if target in members:
                lines.append(f"    {modules[module]}:{line} imports {target}")
    return "\n".join(lines)


# --- the project -----------------------------------------------------------------------------


def test_no_import_cycles():
    modules = {m: p.relative_to(ROOT) for m, p in project_modules(ROOT, PACKAGES).items()}
    graph = import_graph(ROOT, PACKAGES)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(describe(c, graph, modules) for c in cycles)


def test_no_module_is_too_long():
    too_long = {}
    for path in project_modules(ROOT, PACKAGES).values():
        name = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES and name not in LONG_MODULES_ALLOWED:
            too_long[name] = lines
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_every_long_module_allowed_exists():
    modules = {p.relative_to(ROOT).as_posix() for p in project_modules(ROOT, PACKAGES).values()}
    assert modules >= LONG_MODULES_ALLOWED, LONG_MODULES_ALLOWED - modules


def view_modules(root: Path, packages: Iterable[str]) -> list[Path]:
    """Every views.py and every module of a views/ package."""
    return [
        path
        for path in project_modules(root, packages).values()
        if path.name == "views.py" or "views" in path.relative_to(root).parts[:-1]
    ]


def long_functions(path: Path, limit: int) -> list[tuple[int, str, int]]:
    """(def line, name, lines) of each function or method in the file longer than limit
    lines, counted from the def line to the last line (decorators not counted)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return sorted(
        (node.lineno, node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > limit
    )


def test_view_modules_are_found():
    found = {p.relative_to(ROOT).as_posix() for p in view_modules(ROOT, PACKAGES)}
    assert {"apps/views.py", "deployments/views.py", "secrets_vault/views.py"} <= found
    assert "deployments/webhooks/views.py" in found or not (ROOT / "deployments/webhooks").is_dir()


def test_no_view_function_is_too_long():
    too_long = [
        f"{path.relative_to(ROOT).as_posix()}:{line} {name}: {lines} lines"
        for path in view_modules(ROOT, PACKAGES)
        for line, name, lines in long_functions(path, MAX_VIEW_LINES)
    ]
    assert not too_long, f"view functions over {MAX_VIEW_LINES} lines:\n" + "\n".join(too_long)


# --- the checks themselves, on made-up trees -------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_graph_resolves_absolute_relative_and_from_imports(tmp_path):
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "from . import a\n",
            "pkg/a.py": "import os\nimport pkg.b\nfrom pkg import c, helper\n",
            "pkg/b.py": "from .sub import d\nfrom .sub.d import thing\nfrom . import *\n",
            "pkg/c.py": "def helper(): ...\n",
            "pkg/sub/__init__.py": "from .. import c\nfrom ..c import helper\n",
            "pkg/sub/d.py": "from ..sub import e\nfrom ... import beyond\nimport django.db\n",
            "pkg/sub/e.py": "def f():\n    from pkg.sub.d import thing  # in a function\n",
            "pkg/migrations/0001_initial.py": "from pkg import a\n",
            "other/__init__.py": "import pkg.a\n",
        },
    )
    graph = import_graph(root, ["pkg"])
    assert graph == {
        "pkg": {"pkg.a": 1},
        "pkg.a": {"pkg.b": 2, "pkg.c": 3, "pkg": 3},  # helper is no module: it is pkg's
        "pkg.b": {"pkg.sub.d": 1, "pkg": 3},
        "pkg.c": {},
        "pkg.sub": {"pkg.c": 1},
        "pkg.sub.d": {"pkg.sub.e": 1},
        "pkg.sub.e": {"pkg.sub.d": 2},
    }


@pytest.mark.parametrize(
    "module,path,statement,expected",
    [
        ("pkg.a", "pkg/a.py", "from pkg import b, helper", ["pkg.b", "pkg"]),
        ("pkg.a", "pkg/a.py", "from . import b", ["pkg.b"]),
        ("pkg.a", "pkg/a.py", "from .b import thing", ["pkg.b"]),
        ("pkg.a", "pkg/a.py", "from .. import x", []),
        ("pkg", "pkg/__init__.py", "from . import a", ["pkg.a"]),
        ("pkg.sub", "pkg/sub/__init__.py", "from ..a import thing", ["pkg.a"]),
        ("pkg.sub", "pkg/sub/__init__.py", "from .. import *", ["pkg"]),
        ("pkg.a", "pkg/a.py", "import pkg.sub.nothing, json", ["pkg.sub", None]),
    ],
)
def test_an_import_statement_resolves(module, path, statement, expected):
    modules = dict.fromkeys(["pkg", "pkg.a", "pkg.b", "pkg.sub"], Path())
    node = ast.parse(statement).body[0]
    assert [_resolve(n, modules) for n in _imported(node, module, Path(path))] == expected


def test_a_planted_two_cycle_and_three_cycle_are_found(tmp_path):
    root = _tree(
        tmp_path,
        {
            "one/__init__.py": "",
            "one/x.py": "from one import y\n",
            "one/y.py": "from . import x\n",
            "two/__init__.py": "",
            "two/p.py": "import two.q\n",
            "two/q.py": "from two.r import something\n",
            "two/r.py": "import os\n\n\ndef later():\n    from .p import run\n    return run\n",
            "two/s.py": "import two.p\nimport one.x\n",  # leads into both cycles, in neither
            "one/migrations/0002_x.py": "import one.x\n",
        },
    )
    graph = import_graph(root, ["one", "two"])
    assert import_cycles(graph) == [["one.x", "one.y"], ["two.p", "two.q", "two.r"]]
    modules = {m: p.relative_to(root) for m, p in project_modules(root, ["two"]).items()}
    message = describe(["two.p", "two.q", "two.r"], graph, modules)
    assert "two/r.py:5 imports two.p" in message
    assert "two/p.py:1 imports two.q" in message


def test_a_tree_without_a_cycle_has_none(tmp_path):
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/models.py": "import os\n",
            "pkg/services.py": "from pkg import models\nfrom .models import Thing\n",
            "pkg/views.py": "def v():\n    from pkg import services\n",
            "pkg/urls.py": "from pkg import views\n",
            "pkg/migrations/0001_initial.py": "from pkg import urls\n",
            "pkg/migrations/__init__.py": "",
        },
    )
    graph = import_graph(root, ["pkg"])
    assert import_cycles(graph) == []
    assert "pkg.migrations" not in graph


def test_strongly_connected_handles_self_loops_chains_and_deep_graphs():
    assert strongly_connected({"a": ["a"]}) == [["a"]]
    assert strongly_connected({"a": ["b"], "b": ["c"], "c": []}) == [["a"], ["b"], ["c"]]
    assert strongly_connected({"a": ["b"], "b": ["a", "c"], "c": ["d"], "d": ["c"]}) == [
        ["a", "b"],
        ["c", "d"],
    ]
    deep = {f"m{i}": [f"m{i + 1}"] for i in range(5000)}
    deep["m5000"] = ["m0"]
    assert len(strongly_connected(deep)) == 1  # no recursion limit


def test_long_functions_counts_from_def_to_the_end(tmp_path):
    path = tmp_path / "views.py"
    body = "".join(f"    x{i} = {i}\n" for i in range(40))
    method_body = body.replace("    ", "        ")
    path.write_text(
        f"@decorator\ndef long(request):\n{body}    return x0\n\n\n"
        f"async def short(request):\n    return 1\n\n\n"
        f"class V:\n    def get(self):\n{method_body}"
    )
    assert long_functions(path, 40) == [(2, "long", 42), (51, "get", 41)]


@pytest.mark.parametrize(
    "name,is_view",
    [
        ("pkg/views.py", True),
        ("pkg/views/__init__.py", True),
        ("pkg/views/pages.py", True),
        ("pkg/sub/views.py", True),
        ("pkg/previews.py", False),
        ("pkg/services.py", False),
    ],
)
def test_view_modules(tmp_path, name, is_view):
    _tree(tmp_path, {"pkg/__init__.py": "", name: ""})
    assert [p.relative_to(tmp_path).as_posix() for p in view_modules(tmp_path, ["pkg"])] == (
        [name] if is_view else []
    )
