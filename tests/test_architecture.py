"""The floors of the code base, checked on the source (issue 11; ``docs/architecture.md`` draws them).

Bottom-up: ``protocols`` (pure codecs) -> ``agents.core`` (config primitives, supervisor, back-off, errors) ->
``agents.uplink`` -> the features (``agents.footfall``, ``agents.tags``, the heartbeat, the cloud sink) ->
``agents.gateway`` (the assembly) -> the field tools and the simulator -> the CLI. A module imports only from its
own floor's package or the floors below; the simulator plugs its backends in from above, so the only modules of
``agents`` that may import ``sim`` are the CLI's commands and the benchmarks that run on the simulator.

The test reads every ``import`` statement with :mod:`ast`, wherever it sits (a lazy import inside a function
still ties the floors together), and looks for cycles among the imports that run at import time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "protocols", "sim")
MAX_LINES = 600

# (module prefix, floor): the longest matching prefix decides. Modules on one floor may import each other only
# within the same top package of that floor (features do not import sibling features).
FLOORS: tuple[tuple[str, int], ...] = (
    ("protocols", 0),
    ("agents", 1),  # the package itself: only __version__
    ("agents.core", 1),
    ("agents.firmware_files", 1),
    ("agents.uplink", 2),
    ("agents.heartbeat", 3),
    ("agents.footfall", 3),
    ("agents.tags", 3),
    ("agents.cloud", 3),
    ("agents.gateway", 4),
    ("agents.preflight", 5),
    ("agents.doctor", 5),
    ("agents.field", 5),
    ("agents.provision", 5),
    ("sim", 6),
    ("agents.bench", 7),
    ("agents.cli", 8),
)
SIM_IMPORTERS_ALLOWED = ("agents.cli", "agents.bench")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    at_import_time: bool  # module level, outside ``if TYPE_CHECKING:``


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def project_modules() -> set[str]:
    return {module_name(path) for path in source_files()}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, known: set[str]) -> Iterator[Import]:
    """Every import of a project module in ``path``; ``from pkg import sub`` counts as importing ``pkg.sub``."""
    importer = module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def visit(node: ast.AST, at_import_time: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for statement in child.body:
                    yield from visit(ast.Module(body=[statement], type_ignores=[]), False)
                for statement in child.orelse:
                    yield from visit(ast.Module(body=[statement], type_ignores=[]), at_import_time)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] in PACKAGES:
                        yield Import(importer, alias.name, child.lineno, at_import_time)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = importer.split(".")
                    base = base if is_package else base[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join([*base, child.module] if child.module else base)
                else:
                    target = child.module or ""
                if target.split(".")[0] not in PACKAGES:
                    continue
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    yield Import(importer, sub if sub in known else target, child.lineno, at_import_time)
            else:
                yield from visit(child, at_import_time)

    yield from visit(tree, True)


def all_imports() -> list[Import]:
    known = project_modules()
    return [found for path in source_files() for found in imports_of(path, known)]


def floor_of(module: str) -> tuple[int, str]:
    """(floor, the prefix that placed it)."""
    matches = [(prefix, floor) for prefix, floor in FLOORS if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is on no floor: add it to FLOORS"
    prefix, floor = max(matches, key=lambda match: len(match[0]))
    return floor, prefix


def test_every_module_is_under_600_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in source_files()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"modules over {MAX_LINES} lines: split them along their seams"


def test_core_imports_nothing_above_it() -> None:
    upward = [
        f"{i.importer}:{i.line} imports {i.imported}"
        for i in all_imports()
        if i.importer.startswith("agents.core")
        and not (i.imported.startswith(("agents.core", "protocols")) or i.imported == "agents")
    ]
    assert upward == []


def test_only_the_cli_and_the_simulator_benchmarks_import_the_simulator() -> None:
    offenders = [
        f"{i.importer}:{i.line} imports {i.imported}"
        for i in all_imports()
        if i.importer.startswith("agents")
        and i.imported.split(".")[0] == "sim"
        and not i.importer.startswith(SIM_IMPORTERS_ALLOWED)
    ]
    assert offenders == []


def test_nothing_imports_a_floor_above_its_own_or_a_sibling_feature() -> None:
    offenders = []
    for found in all_imports():
        floor, prefix = floor_of(found.importer)
        target_floor, target_prefix = floor_of(found.imported)
        if target_floor > floor or (target_floor == floor and target_prefix != prefix and floor > 1):
            offenders.append(f"{found.importer}:{found.line} ({prefix}) imports {found.imported} ({target_prefix})")
    assert offenders == []


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for found in all_imports():
        if found.at_import_time and found.imported != found.importer:
            graph.setdefault(found.importer, set()).add(found.imported)
    cycles = strongly_connected(graph)
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the components of more than one module (a cycle each)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checks_see_what_they_check() -> None:
    """The checks above would pass on an empty list: prove they read real imports and catch a cycle."""
    imports = all_imports()
    assert len(imports) > 500
    assert any(i.importer == "agents.gateway.runtime" and i.imported.startswith("agents.uplink") for i in imports)
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [{"a", "b"}]
    assert floor_of("agents.footfall.detectors") == (3, "agents.footfall")
