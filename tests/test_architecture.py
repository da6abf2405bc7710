"""The package's shape, read from its import statements (``ast``; nothing is imported).

Checked for every module under ``diffsuite/``:

(a) a differentiator package (``differentiators/<name>/``) never imports a sibling one; shared pieces
    live in ``differentiators/base.py`` or below. Every import counts, function-level ones included.
(b) no import cycle among module-level imports. Function-level (lazy) imports are left out on purpose:
    they run after every module has finished loading, so they cannot meet a half-initialised module,
    and they are how the registries (differentiators, studies) and optional dependencies stay lazy.
    The parent packages an import executes (``diffsuite/__init__``) are left out too: a parent is always
    initialised first, so importing it from below is never a cycle in Python's sense.
(c) lower layers never import higher ones (``LAYERS``); every import counts.
(d) no forwarding stub: a module whose only statements are imports from one other module.

The checks are functions of a source tree, so the last tests run them on a small package written to a
temporary folder with one violation of each kind, and see each reported.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "diffsuite"

#: module prefix -> prefixes it must never import (any import, lazy ones included)
LAYERS = {
    "diffsuite.errors": ("diffsuite.",),
    "diffsuite.namespace": ("diffsuite.nn", "diffsuite.objective", "diffsuite.differentiators", "diffsuite.study",
                            "diffsuite.cli", "diffsuite.gradcheck", "diffsuite.testing", "diffsuite.reference"),
    "diffsuite.budget": ("diffsuite.nn", "diffsuite.objective", "diffsuite.differentiators", "diffsuite.study",
                         "diffsuite.cli", "diffsuite.gradcheck", "diffsuite.testing", "diffsuite.reference"),
    "diffsuite.pytree": ("diffsuite.nn", "diffsuite.objective", "diffsuite.differentiators", "diffsuite.study",
                         "diffsuite.cli", "diffsuite.gradcheck", "diffsuite.testing", "diffsuite.reference"),
    "diffsuite.nn": ("diffsuite.objective", "diffsuite.differentiators", "diffsuite.study", "diffsuite.cli",
                     "diffsuite.gradcheck", "diffsuite.testing", "diffsuite.reference"),
    "diffsuite.objective": ("diffsuite.differentiators", "diffsuite.study", "diffsuite.cli", "diffsuite.gradcheck",
                            "diffsuite.testing", "diffsuite.reference"),
    "diffsuite.differentiators": ("diffsuite.study", "diffsuite.cli", "diffsuite.gradcheck", "diffsuite.testing",
                                  "diffsuite.reference"),
    "diffsuite.reference": ("diffsuite.study", "diffsuite.cli", "diffsuite.gradcheck", "diffsuite.testing"),
    "diffsuite.study": ("diffsuite.cli",),
    "diffsuite.gradcheck": ("diffsuite.cli",),
    "diffsuite.testing": ("diffsuite.cli",),
}


def _covers(prefix: str, module: str) -> bool:
    return module == prefix or module.startswith(prefix.rstrip(".") + ".")


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root`` (a package folder)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """``(imported module, at module level)`` for each import of ``name`` that names a module in ``known``.

    ``from package import name`` counts as importing ``package.name`` when that is a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, top: bool):
        for child in ast.iter_child_nodes(node):
            lazy = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[:len(package.split(".")) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                for a in child.names:
                    sub = f"{target}.{a.name}"
                    found.append((sub if sub in known else target, top))
            visit(child, top and not lazy)

    visit(tree, True)
    return [(m, top) for m, top in found if m in known]


def graph(root: Path) -> dict[str, list[tuple[str, bool]]]:
    mods = modules(root)
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def sibling_differentiator_imports(g) -> list[str]:
    def package(m):
        parts = m.split(".")
        return parts[2] if len(parts) > 2 and parts[1] == "differentiators" else None

    # every differentiator is a package (or module) of its own; only base.py is shared
    packages = {package(m) for m in g} - {None, "base"}
    bad = []
    for m, edges in g.items():
        if package(m) in packages:
            bad += [f"{m} imports {t}" for t, _ in edges if package(t) in packages and package(t) != package(m)]
    return bad


def cycles(g) -> list[list[str]]:
    """Strongly connected components (more than one module, or a self-import) of the module-level graph."""
    edges = {m: sorted({t for t, top in es if top}) for m, es in g.items()}
    index, low, stack, on, out = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges[v]:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            strong(v)
    return out


def layer_violations(g) -> list[str]:
    bad = []
    for m, es in g.items():
        for lower, forbidden in LAYERS.items():
            if _covers(lower, m):
                bad += [f"{m} imports {t}" for t, _ in es for f in forbidden if _covers(f, t) and not _covers(lower, t)]
    return bad


def stubs(root: Path) -> list[str]:
    """Modules whose statements (docstring, ``__future__`` and ``__all__`` aside) are imports from one module."""
    mods = modules(root)
    out = []
    for name, path in mods.items():
        body = ast.parse(path.read_text()).body
        rest = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(getattr(s, "value", None), ast.Constant))
                and not (isinstance(s, ast.ImportFrom) and s.module == "__future__")
                and not (isinstance(s, ast.Assign) and [getattr(t, "id", None) for t in s.targets] == ["__all__"])]
        if rest and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in rest):
            sources = {(s.level, s.module) if isinstance(s, ast.ImportFrom) else tuple(a.name for a in s.names)
                       for s in rest}
            if len(sources) == 1:
                out.append(name)
    return out


# ----- the package itself -----
@pytest.fixture(scope="module")
def diffsuite_graph():
    return graph(ROOT)


def test_the_walk_sees_the_package(diffsuite_graph):
    # guards the checks below against passing vacuously (a wrong root, a parser that finds nothing)
    assert "diffsuite.differentiators.symbolic.build" in diffsuite_graph
    assert ("diffsuite.differentiators.base", True) in diffsuite_graph["diffsuite.differentiators.symbolic.build"]
    assert ("diffsuite.differentiators.reverse.tape", True) in diffsuite_graph["diffsuite.study.tape_ops"]


def test_differentiator_packages_never_import_each_other(diffsuite_graph):
    assert sibling_differentiator_imports(diffsuite_graph) == []


def test_no_import_cycles(diffsuite_graph):
    assert cycles(diffsuite_graph) == []


def test_lower_layers_never_import_higher_ones(diffsuite_graph):
    assert layer_violations(diffsuite_graph) == []


def test_no_forwarding_stubs():
    assert stubs(ROOT) == []


# ----- the checks can fail -----
def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / "diffsuite" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "diffsuite"


def test_the_checks_report_each_kind_of_violation(tmp_path):
    root = _write(tmp_path, {
        "__init__.py": "",
        "namespace.py": "def f():\n    from .study import runner\n",                    # (c), lazily
        "differentiators/__init__.py": "",
        "differentiators/base.py": "",
        "differentiators/symbolic/__init__.py": "from ..base import *\nx = 1\n",
        "differentiators/forward/__init__.py": "from ..symbolic import build\nx = 1\n",   # (a)
        "differentiators/symbolic/build.py": "",
        "study/__init__.py": "",
        "study/runner.py": "from . import report\nx = 1\n",                             # (b) with report
        "study/report.py": "from .runner import x\nfrom .store import y\n",
        "study/store.py": "def late():\n    from . import report\n",                      # lazy: no cycle
        "study/cli_run.py": '"""stub"""\nfrom .runner import configure\n__all__ = ["configure"]\n',  # (d)
    })
    g = graph(root)
    assert sibling_differentiator_imports(g) == ["diffsuite.differentiators.forward imports "
                                                 "diffsuite.differentiators.symbolic.build"]
    assert cycles(g) == [["diffsuite.study.report", "diffsuite.study.runner"]]
    assert layer_violations(g) == ["diffsuite.namespace imports diffsuite.study.runner"]
    assert stubs(root) == ["diffsuite.study.cli_run"]
