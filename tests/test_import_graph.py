"""The import graph of the project's packages: one way down the layers, and no circles.

Every ``import`` and ``from ... import`` in every module counts, wherever it stands: at the top,
inside a function (a lazy import), under ``if TYPE_CHECKING:``. A lazy import only delays a
dependency, it does not remove it: two modules that need each other are one tangle whether the
second import runs at load time or at the first call, so lazy imports count for circles too.

An import names the module it loads: ``from sonic_rt.audio import tts`` is an edge to
``sonic_rt.audio.tts`` (a submodule), ``from sonic_rt.audio import SAMPLE_RATE`` one to
``sonic_rt.audio`` (the package's own ``__init__``). The parents Python initialises on the way
(``sonic_rt``, ``sonic_rt.audio``) are not counted as dependencies of the importer.

Four rules:
- layers: ``integrations -> server -> streaming -> sonic_rt``; no module imports a higher layer;
- no circle between modules;
- no circle between packages: with each subpackage (``sonic_rt.audio``, ``server.cluster``) taken
  as one node and the modules at a package's top (``sonic_rt.config``) as nodes of their own, the
  graph stays acyclic, so each stage of ``sonic_rt`` reads only the stages before it;
- every import of the project's modules, from them, the tests, the benchmarks and the ComfyUI node
  folder, names a module that exists and a name it defines (a lazy import that no test runs would
  otherwise only fail in use).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

LAYERS = ("sonic_rt", "streaming", "server", "integrations")  # lowest first


def modules(root: Path, packages=LAYERS) -> dict[str, Path]:
    """Dotted name -> file, for every module of ``packages`` present under ``root``."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that module ``name`` (at ``path``) imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(_owner(alias.name, known) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                out.add(submodule if submodule in known else _owner(base, known))
    out.discard(None)
    out.discard(name)
    return out


def _owner(dotted: str, known: dict[str, Path]) -> str | None:
    """The longest prefix of ``dotted`` that is one of ``known`` (None: outside the project)."""
    parts = dotted.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def graph(root: Path, packages=LAYERS) -> dict[str, set[str]]:
    known = modules(root, packages)
    return {name: imports(name, path, known) for name, path in known.items()}


def upward(edges: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """Each import from a lower layer into a higher one, as ``importer -> imported``."""
    rank = {layer: i for i, layer in enumerate(layers)}
    return sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets
                  if rank[b.split(".")[0]] > rank[a.split(".")[0]])  # fmt: skip


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:  # recursion depth is bounded by the module count (a few hundred)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _circle(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """One closed path through ``component``, starting at its first member (breadth-first)."""
    members, start = set(component), component[0]
    came_from = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                path = [node]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt in members and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return component


def defined(path: Path) -> set[str] | None:
    """The names a module's top level binds (None: it has a module ``__getattr__``, so any may exist)."""
    names: set[str] = set()
    body = list(ast.parse(path.read_text(), str(path)).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for field in ("body", "orelse", "finalbody", "handlers"):
                body.extend(getattr(node, field, []))
        elif isinstance(node, ast.ExceptHandler):
            body.extend(node.body)
    return names


def unresolved(root: Path, importers: list[Path], packages=LAYERS) -> list[str]:
    """Each import in ``importers`` of a module of ``packages`` that does not exist, or of a name
    that module does not define."""
    known = modules(root, packages)
    names = {name: defined(path) for name, path in known.items()}
    by_path = {path: name for name, path in known.items()}
    problems = []
    for path in importers:
        name = by_path.get(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                problems += [f"{where}: no module {a.name}" for a in node.names
                             if a.name.split(".")[0] in packages and a.name not in known]  # fmt: skip
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    if name is None:
                        continue
                    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                if base.split(".")[0] not in packages:
                    continue
                if base not in known:
                    problems.append(f"{where}: no module {base}")
                    continue
                for alias in node.names:
                    if alias.name != "*" and f"{base}.{alias.name}" not in known and names[base] is not None \
                            and alias.name not in names[base]:
                        problems.append(f"{where}: {base} has no {alias.name}")
    return problems


def package_of(module: str) -> str:
    """The node a module counts as in the package graph: its subpackage (``sonic_rt.audio.tts``
    -> ``sonic_rt.audio``), or itself at a top-level package's top (``sonic_rt.config``)."""
    return ".".join(module.split(".")[:2])


def collapsed(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, targets in edges.items():
        node = out.setdefault(package_of(a), set())
        node.update(package_of(b) for b in targets if package_of(b) != package_of(a))
    return out


def _describe(found: list[list[str]], edges: dict[str, set[str]]) -> str:
    return "\n".join(f"{', '.join(c)}; e.g. {' -> '.join(_circle(c, edges))}" for c in found)


@pytest.fixture(scope="module")
def project() -> dict[str, set[str]]:
    return graph(REPO)


def test_the_layers_are_all_there(project):
    assert {name.split(".")[0] for name in project} >= {"sonic_rt", "streaming", "server"}
    assert "sonic_rt.offline" in project["server.workers.jobs"]  # a function-level import is seen


def test_no_import_runs_up_the_layers(project):
    assert not upward(project), "imports from a lower layer into a higher one:\n" + "\n".join(upward(project))


def test_no_circle_between_modules(project):
    found = cycles(project)
    assert not found, "modules that import each other (lazy imports count):\n" + _describe(found, project)


def test_no_circle_between_packages(project):
    packages = collapsed(project)
    found = cycles(packages)
    assert not found, "packages that import each other:\n" + _describe(found, packages)


def test_every_import_of_the_project_names_what_exists():
    importers = sorted(p for folder in (*LAYERS, "tests", "bench", "comfyui_sonic_rt")
                       for p in (REPO / folder).rglob("*.py") if ".venv" not in p.parts)  # fmt: skip
    problems = unresolved(REPO, importers)
    assert not problems, "imports of what is not there:\n" + "\n".join(problems)


# --- the checks themselves, on a tree made for them ----------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return graph(root, ("low", "high"))


def test_a_lazy_relative_import_closes_a_circle(tmp_path):
    edges = _tree(tmp_path, {
        "low/__init__.py": "",
        "low/a.py": "from .b import thing\n",
        "low/b.py": "def thing():\n    from . import a\n    return a\n",
        "low/c.py": "from low import a, b\nfrom low.a import thing\n",
    })  # fmt: skip
    assert edges["low.b"] == {"low.a"} and edges["low.c"] == {"low.a", "low.b"}
    assert cycles(edges) == [["low.a", "low.b"]] and _circle(["low.a", "low.b"], edges) == ["low.a", "low.b", "low.a"]


def test_a_type_checking_import_and_a_parent_package(tmp_path):
    edges = _tree(tmp_path, {
        "low/__init__.py": "X = 1\n",
        "low/sub/__init__.py": "",
        "low/sub/deep.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ...low import X\n",
        "low/top.py": "import low.sub.deep\nfrom .sub import deep\n",
        "high/__init__.py": "",
        "high/edge.py": "import os\nimport low.top\n",
    })  # fmt: skip
    assert edges["low.sub.deep"] == {"low"} and edges["low.top"] == {"low.sub.deep"}
    assert edges["high.edge"] == {"low.top"} and not upward(edges, ("low", "high"))
    (tmp_path / "low/top.py").write_text("import high.edge\n")
    assert upward(graph(tmp_path, ("low", "high")), ("low", "high")) == ["low.top -> high.edge"]


def test_packages_in_a_circle_though_their_modules_are_not(tmp_path):
    edges = _tree(tmp_path, {
        "low/__init__.py": "",
        "low/one/__init__.py": "",
        "low/one/a.py": "from ..two import b\n",
        "low/one/c.py": "",
        "low/two/__init__.py": "",
        "low/two/b.py": "",
        "low/two/d.py": "from ..one import c\n",
        "low/config.py": "",
    })  # fmt: skip
    assert not cycles(edges)
    assert cycles(collapsed(edges)) == [["low.one", "low.two"]]


def test_an_import_of_a_module_or_a_name_that_is_not_there(tmp_path):
    _tree(tmp_path, {
        "low/__init__.py": "def __getattr__(name):\n    return name\n",
        "low/a.py": "X = 1\nif X:\n    from os import path as Y\n",
        "low/b.py": "from .a import X, Y\nfrom . import anything\n\ndef f():\n    from .a import Z\n"
                    "    from .gone import W\n    import low.nope\n",
    })  # fmt: skip
    files = sorted((tmp_path / "low").glob("*.py"))
    assert unresolved(tmp_path, files, ("low",)) == [
        "low/b.py:5: low.a has no Z", "low/b.py:6: no module low.gone", "low/b.py:7: no module low.nope"]
