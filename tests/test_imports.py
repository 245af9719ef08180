"""The package's import graph: no module of prunerob/ imports one that imports it back (imports inside
functions count), and the modules that read names, specs and tables import without torch."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "prunerob"
TORCH_FREE = (
    "catalog",
    "spec",
    "aggregate",
    "compare",
    "charts",
    "scenarios",
    "report",
    "reference",
    "results",
    "profiles",
    "plan",
    "runs",
)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports anywhere in its body: ``import prunerob.x``, ``from
    prunerob import x``, ``from prunerob.x import y`` and relative imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = (node.module or "").split(".")[0]
                names = [f"prunerob.{base}"] if base else [f"prunerob.{alias.name}" for alias in node.names]
            elif node.module == "prunerob":
                names = [f"prunerob.{alias.name}" for alias in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "prunerob" and len(parts) > 1 and parts[1] in modules:
                found.add(parts[1])
    found.discard(path.stem)
    return found


def graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.glob("*.py"))
    modules = {p.stem for p in files}
    return {p.stem: imports(p, modules) for p in files}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``edges`` as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_names_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_every_form_of_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "import prunerob.a\nfrom prunerob import b\nfrom prunerob.c import x\n"
        "def f():\n    from prunerob import d as e\n    import prunerob.m\n"
    )
    assert imports(source, {"a", "b", "c", "d", "m", "z"}) == {"a", "b", "c", "d"}


def test_no_module_imports_one_that_imports_it_back():
    edges = graph()
    assert {"catalog", "spec", "evaluate", "aggregate", "attacks"} <= set(edges)
    cycle = find_cycle(edges)
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_catalog_specs_and_tables_import_without_torch():
    code = (
        "import sys\n"
        + "".join(f"import prunerob.{m}\n" for m in TORCH_FREE)
        + "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    out = run.stdout
    assert out.strip() == "[]", f"importing {', '.join(TORCH_FREE)} imported torch"
