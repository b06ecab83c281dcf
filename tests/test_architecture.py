"""The library is a house of floors: each module imports only the floors below it.

The import graph is read from the source with ``ast``: imports at the top of
a module and imports inside functions alike, since an import moved into a
function to dodge a circle is still an arrow. ``from package import name``
points at the submodule when ``name`` is one, else at the package; relative
imports are resolved against the importing module's package. A package whose
``__init__.py`` imports every module of its folder by name (``bs_lib.models``)
gets an arrow to each of them.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import bs_lib

PACKAGE_DIR = Path(bs_lib.__file__).resolve().parent
MAX_LINES = 600

#: Circles still being untangled elsewhere; each entry is the set of modules in one circle. Empty the list as
#: they go: a listed circle that no longer exists fails the test, so the list never outlives them.
KNOWN_CYCLES: list[set[str]] = []

#: Files over MAX_LINES that are being split elsewhere (paths relative to bs_lib/).
KNOWN_LONG_FILES: set[str] = set()

#: What the engine must never import: the methods, and the applications built on it.
ABOVE_THE_ENGINE = ("bs_lib.models", "bs_lib.evaluate", "bs_lib.benchmark", "bs_lib.suppress", "bs_lib.runs",
                    "bs_lib.cli", "bs_lib.train", "bs_lib.__main__", "bs_lib.course", "bs_lib.claims")

#: The engine's interface, all a model may import from it: never the Trainer.
ENGINE_INTERFACE = {"bs_lib.engine.objective", "bs_lib.engine.config", "bs_lib.engine.recipes",
                    "bs_lib.engine.checkpoint"}


# --------------------------------------------------------------------------- the graph


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> dict[str, Path]:
    """Every module of ``bs_lib`` by dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """The absolute names a module imports, each with the submodule an imported name may be."""
    package = module if is_package else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[: len(base) - node.level + 1])
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module
            names += [origin, *(f"{origin}.{alias.name}" for alias in node.names)]
    return names


def imports_every_module_of_its_folder(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return path.name == "__init__.py" and "pkgutil.iter_modules" in text and "import_module" in text


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``bs_lib`` modules it imports (itself excluded)."""
    files = source_files()
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = set()
        for name in imported_names(tree, module, path.name == "__init__.py"):
            if name in files:  # a submodule when ``name`` is one, else (``from x import y``) its module ``x``
                found.add(name)
        if imports_every_module_of_its_folder(path):
            found |= {other for other in files if other.rpartition(".")[0] == module}
        graph[module] = found - {module}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The circles of the graph: its strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def one_circle(graph: dict[str, set[str]], members: set[str]) -> str:
    """A readable path around a circle: ``a -> b -> a``."""
    start = min(members)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for target in sorted(graph[node] & members):
            if target == start:
                return " -> ".join([*paths[node], start])
            if target not in paths:
                paths[target] = [*paths[node], target]
                frontier.append(target)
    return ", ".join(sorted(members))


def arrows_from(graph: dict[str, set[str]], prefix: str) -> dict[str, set[str]]:
    """The arrows leaving the modules in ``prefix`` (a package and everything under it)."""
    inside = defaultdict(set)
    for module, targets in graph.items():
        if module == prefix or module.startswith(prefix + "."):
            inside[module] |= targets
    return inside


def within(module: str, packages: tuple[str, ...] | set[str]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


# --------------------------------------------------------------------------- the rules


def test_the_graph_reader_sees_function_level_relative_and_package_imports():
    source = "import bs_lib.io\nfrom . import metrics\nfrom .engine import config\n\ndef f():\n" \
             "    from bs_lib import phantom\n    from ..x import y\n"
    names = imported_names(ast.parse(source), "bs_lib.models.demo", is_package=False)
    assert {"bs_lib.io", "bs_lib.models.metrics", "bs_lib.models.engine.config", "bs_lib.phantom",
            "bs_lib.x.y"} <= set(names)
    graph = import_graph()
    assert "bs_lib.engine.checkpoint" in graph["bs_lib.engine.trainer"]  # a plain module import
    assert "bs_lib.models.ldm" in graph["bs_lib.models"]  # the package imports every module of its folder


def test_no_import_circles_besides_the_known_ones():
    graph = import_graph()
    circles = strongly_connected(graph)
    unknown = [one_circle(graph, circle) for circle in circles
               if not any(circle <= known for known in KNOWN_CYCLES)]
    assert not unknown, "import circles: " + "; ".join(unknown)
    gone = [sorted(known) for known in KNOWN_CYCLES if not any(known & circle for circle in circles)]
    assert not gone, f"KNOWN_CYCLES lists circles that no longer exist, remove them: {gone}"


def test_no_file_is_longer_than_the_limit():
    lengths = {str(path.relative_to(PACKAGE_DIR)): len(path.read_text(encoding="utf-8").splitlines())
               for path in PACKAGE_DIR.rglob("*.py")}
    too_long = {name: lines for name, lines in lengths.items() if lines > MAX_LINES and name not in KNOWN_LONG_FILES}
    assert not too_long, f"files over {MAX_LINES} lines: {too_long}"
    short_again = sorted(name for name in KNOWN_LONG_FILES if lengths.get(name, 0) <= MAX_LINES)
    assert not short_again, f"KNOWN_LONG_FILES lists files that are no longer long, remove them: {short_again}"


def test_the_engine_imports_neither_models_nor_applications():
    offending = {module: sorted(target for target in targets if within(target, ABOVE_THE_ENGINE))
                 for module, targets in arrows_from(import_graph(), "bs_lib.engine").items()}
    offending = {module: targets for module, targets in offending.items() if targets}
    assert not offending, f"the engine imports from above it: {offending}"


def test_models_import_only_the_engines_interface():
    graph = import_graph()
    offending = {}
    for module, targets in arrows_from(graph, "bs_lib.models").items():
        wrong = sorted(target for target in targets
                       if (within(target, ("bs_lib.engine",)) and target not in ENGINE_INTERFACE)
                       or target == "bs_lib.train")
        if wrong:
            offending[module] = wrong
    assert not offending, f"models reach past the engine's interface (the Trainer is not theirs): {offending}"
