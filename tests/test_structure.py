"""The shape of the code drawn from its imports: one way, no circle.

Imports go one way: the protocol layers (agi/, ami/, dialplan/) never import the app, and
inside the app the leaf modules (`centralita.keys` for the aiohttp AppKeys) are imported by
the rest, never the reverse. A circle can hide behind an import placed inside a function,
which runs later; so first-party imports are module-level only, and the graph of every
import that runs must have no cycle. Imports under `if TYPE_CHECKING:` are for annotations
and never run, and a submodule's import of its parent package is not counted (Python loads
the package first, and `centralita.web` importing its own handlers is no circle).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agi", "ami", "dialplan", "centralita")


def module_files() -> dict[str, Path]:
    """Every module of our packages by dotted name (`__main__` runs the CLI: left out)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__main__":
                continue
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = module_files()


def is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(
    tree: ast.AST, *, in_function: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Each import statement that runs, with whether it sits inside a function."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, in_function
        elif isinstance(node, ast.If) and is_type_checking(node.test):
            yield from runtime_imports(ast.Module(body=node.orelse, type_ignores=[]))
        else:
            nested = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            yield from runtime_imports(node, in_function=nested)


def imported_modules(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """Our modules that one import statement loads (a `from package import name` counts the
    submodule `package.name` when there is one, else the package itself)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    targets = set()
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in MODULES:
            targets.add(submodule)
        elif base in MODULES:
            targets.add(base)
    return targets


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """The edges between our modules, from every import that runs (at module level or in a
    function), and the first-party imports made inside a function (`module:line -> target`)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    in_functions = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, in_function in runtime_imports(tree):
            targets = imported_modules(name, node) - {name}
            graph[name] |= targets
            if in_function:
                in_functions += [f"{name}:{node.lineno} -> {t}" for t in sorted(targets)]
    return graph, in_functions


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that ends where it starts, or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph[node]):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_module_list_is_complete() -> None:
    # The other tests walk this list: it must hold the modules named in the issue.
    for name in ("agi.server", "ami.client", "centralita.app", "centralita.keys"):
        assert name in MODULES
    assert len(MODULES) > 40


def test_every_module_imports_in_a_fresh_interpreter_in_alphabetical_order() -> None:
    # Alphabetical order imports centralita.app before centralita.web: a module that can
    # only be imported once another one is loaded fails here.
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)"
    result = subprocess.run(
        [sys.executable, "-c", code, *sorted(MODULES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_first_party_imports_are_module_level() -> None:
    # An import inside a function is how a circle hides: the module imports fine, and the
    # loop only closes when the function runs.
    _, in_functions = import_graph()
    assert in_functions == []


def test_the_import_graph_has_no_cycle() -> None:
    # Imports in functions count too: a circle closed at run time is still a circle.
    graph, _ = import_graph()
    assert find_cycle(graph) is None


def test_the_protocol_layers_never_import_the_app() -> None:
    graph, _ = import_graph()
    for name, targets in graph.items():
        if name.split(".")[0] in ("agi", "ami", "dialplan"):
            assert not {t for t in targets if t.startswith("centralita")}, name


def test_find_cycle_finds_one() -> None:
    # The checker itself: a graph with a loop is caught, one without is not.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_imports_are_resolved_like_python_does() -> None:
    # The graph reads `from centralita.web import auth` as the submodule, and a relative
    # import against its package, or the cycle test would see nothing.
    tree = ast.parse("from centralita.web import auth\nfrom . import proxy\n")
    first, second = (node for node, _ in runtime_imports(tree))
    assert imported_modules("centralita.app", first) == {"centralita.web.auth"}
    assert imported_modules("centralita.web.console", second) == {"centralita.web.proxy"}
    guarded = ast.parse("if TYPE_CHECKING:\n    import agi.server\ndef f():\n    import ami\n")
    assert [(type(n).__name__, inside) for n, inside in runtime_imports(guarded)] == [
        ("Import", True)
    ]
