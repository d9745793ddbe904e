"""The import rules of docs/architecture.md, checked by parsing the source (nothing is imported).

Every ``import`` counts: module level, inside functions, and under ``if TYPE_CHECKING:``. A lazy import still
ties two modules together, and a type-only import still means one module must know the other's types.
Rules name packages by prefix, so they hold for ``cli.py`` and for a ``cli/`` package alike.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "unlearn_audit"
TOP = "unlearn_audit"

#: The longest a module may grow (issue 14). Modules listed here are being split elsewhere and are exempt
#: until then; an entry that is no longer needed does no harm, but delete it when you see it.
MAX_LINES = 450
PENDING_SPLITS = {
    "unlearn_audit/cli.py": "issue 14: becomes the cli/ package",
    "unlearn_audit/io/samples.py": "issue 14: the input-shape work splits it",
}

#: Import edges a cycle check tolerates, each with its reason. Delete an entry once the edge is gone.
TOLERATED_EDGES = {
    ("unlearn_audit.unlearning", "unlearn_audit.remediation"): (
        "unlearning/__init__.py imports remediation so that RURK and ReA register as methods, while remediation "
        "runs methods through unlearning.registry. The fix is to move rurk.py and rea.py into unlearning/ "
        "(remediation re-exports them); left to the training-loop work of issue 14 that owns those files."
    ),
}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # an unlearn_audit module, or a top-level third-party/stdlib name
    line: int

    @property
    def internal(self) -> bool:
        return self.target == TOP or self.target.startswith(TOP + ".")

    def __str__(self) -> str:
        return f"{_path(self.importer)}:{self.line} imports {self.target}"


@cache
def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _path(module: str) -> str:
    path = modules().get(module)
    return path.relative_to(ROOT).as_posix() if path else module


def _resolve(module: str, node: ast.ImportFrom) -> str:
    package = module if modules()[module].name == "__init__.py" else module.rpartition(".")[0]
    if node.level == 0:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports() -> tuple[Import, ...]:
    found = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.name if alias.name.startswith(TOP) else alias.name.split(".")[0]
                    found.append(Import(module, name, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, node)
                if not (target == TOP or target.startswith(TOP + ".")):
                    found.append(Import(module, target.split(".")[0], node.lineno))
                    continue
                for alias in node.names:  # `from . import distributed` names a module, not an attribute
                    sub = f"{target}.{alias.name}"
                    found.append(Import(module, sub if sub in modules() else target, node.lineno))
    return tuple(found)


def _within(module: str, *prefixes: str) -> bool:
    return any(module == f"{TOP}.{p}" or module.startswith(f"{TOP}.{p}.") for p in prefixes)


def _violations(
    importers: Iterable[str],
    allowed_internal: tuple[str, ...],
    allowed_external: set[str],
    found: Iterable[Import] | None = None,
) -> list[str]:
    """The imports of ``importers`` that reach outside the allowed packages and third-party names."""
    chosen = set(importers)
    bad = []
    for imp in imports() if found is None else found:
        if imp.importer not in chosen or imp.target == imp.importer:
            continue
        if imp.internal:
            if not _within(imp.target, *allowed_internal):
                bad.append(str(imp))
        elif imp.target not in allowed_external and imp.target not in sys.stdlib_module_names:
            bad.append(str(imp))
    return bad


def _in(*prefixes: str) -> list[str]:
    return [m for m in modules() if _within(m, *prefixes)]


#: docs/architecture.md's layers, bottom up: a module imports only from its own layer or below. Names are
#: packages or modules under unlearn_audit/ ("" is the package root). A module in no layer counts as a front end
#: (the top): it may import anything, and nothing listed may import it.
LAYERS = [
    ("base", ["errors", "version", "progress"]),
    ("numbers", ["stats"]),
    ("estimates and rules", ["analysis", "comparisons", "screening", "evidence", "policy"]),
    ("torch basics", ["device", "inference", "training"]),
    ("files", ["io"]),
    ("counts", ["probes"]),
    ("methods and metrics", ["unlearning", "metrics"]),
    ("rendering of documents", ["report"]),
    ("audit records", ["commitment", "config", "results", "distributed", "reference_cache", "panels"]),
    ("remediation", ["remediation"]),
    ("the flow", ["counting", "sequential", "pilot", "audit"]),
    ("front ends", ["demo", "info", "verification", ""]),
]


def layer_of(module: str) -> int:
    best, rank = -1, len(LAYERS)
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            full = f"{TOP}.{name}" if name else TOP
            if (module == full or (name and module.startswith(full + "."))) and len(full) > best:
                best, rank = len(full), i
    return rank


# --------------------------------------------------------------------------------------------- layer rules


def test_each_layer_imports_only_its_own_or_lower_layers():
    bad = []
    for imp in imports():
        if imp.internal and (imp.importer, imp.target) not in TOLERATED_EDGES:
            if layer_of(imp.target) > layer_of(imp.importer):
                names = [name for name, _ in LAYERS] + ["front ends (unlisted)"]
                bad.append(f"{imp} ({names[layer_of(imp.importer)]} may not import {names[layer_of(imp.target)]})")
    assert not bad


def test_stats_is_pure_numpy_and_scipy():
    """stats/ is the bottom of the estimates: arrays in, ``Estimate`` out; no torch, nothing above it."""
    assert not _violations(_in("stats"), ("stats",), {"numpy", "scipy"})


def test_estimates_and_verdict_rules_need_no_torch():
    """Counts → estimates → verdict is numpy: analysis, screening and evidence read counts as plain arrays
    (they never import probes), and policy is thresholds and rules."""
    estimates = _in("analysis", "comparisons", "screening", "evidence", "policy")
    assert not _violations(
        estimates, ("analysis", "comparisons", "screening", "evidence", "policy", "stats", "errors"), {"numpy", "scipy"}
    )


def test_io_reads_files_and_knows_nothing_above_it():
    """io/ turns files into models and samples; it must not know probes, statistics, audits or reports."""
    allowed = ("io", "errors", "version", "device", "progress", "inference")
    assert not _violations(_in("io"), allowed, _third_party_anywhere())


def test_probes_produce_counts_only():
    """probes/ turns models and samples into counts; what the counts mean is decided above it."""
    forbidden = (
        "analysis", "comparisons", "screening", "evidence", "policy", "config", "results", "audit", "distributed", "metrics",
        "remediation", "unlearning", "report", "demo", "info", "console", "cli",
    )  # fmt: skip
    bad = [str(i) for i in imports() if _within(i.importer, "probes") and _within(i.target, *forbidden)]
    assert not bad


def test_report_renders_plain_documents():
    """report/ renders the JSON document (a dict); it imports no torch and nothing that produces results."""
    allowed = ("report", "errors", "version", "io")  # io: thumbnails re-read the forget set from disk
    assert not _violations(_in("report"), allowed, _third_party_anywhere() - {"torch", "torchvision"})


def test_remediation_does_not_import_the_audit_flow_or_the_cli():
    """remediation/ re-runs an audit it is handed (``verify.AuditRunner``); importing ``audit`` would close a
    cycle, since ``Audit.remediate`` calls remediation."""
    bad = [str(i) for i in imports() if _within(i.importer, "remediation") and _within(i.target, "audit", "cli")]
    assert not bad


def test_results_and_config_sit_below_the_audit_flow():
    bad = [str(i) for i in imports() if _within(i.importer, "results", "config") and _within(i.target, "audit")]
    assert not bad


def test_nothing_below_the_cli_imports_it():
    cli = ("cli", "__main__")
    bad = [str(i) for i in imports() if not _within(i.importer, *cli) and _within(i.target, "cli")]
    assert not bad


def test_only_the_console_module_imports_rich_and_only_the_cli_imports_typer():
    bad = [str(i) for i in imports() if i.target == "rich" and not _within(i.importer, "console")]
    bad += [str(i) for i in imports() if i.target in ("typer", "click") and not _within(i.importer, "cli")]
    assert not bad


def test_no_module_imports_the_package_root():
    """``unlearn_audit/__init__.py`` is the public API and imports io and info: importing it from inside the
    package closes a cycle. Import the module that defines the name (``from .version import __version__``)."""
    assert not [str(i) for i in imports() if i.target == TOP and i.importer != TOP]


def test_the_library_never_prints():
    """Only the CLI and its console print; the library logs and reports progress through a callback."""
    bad = []
    for module, path in modules().items():
        if _within(module, "cli", "console", "__main__"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                bad.append(f"{_path(module)}:{node.lineno} calls print()")
    assert not bad


@cache
def _third_party_anywhere() -> set[str]:
    """Every third-party top-level name the package imports (for rules that restrict only internal imports)."""
    return {i.target for i in imports() if not i.internal and i.target not in sys.stdlib_module_names}


# --------------------------------------------------------------------------------------------------- cycles


def import_graph(tolerated: Iterable[tuple[str, str]] = ()) -> dict[str, set[str]]:
    """Module → modules it imports. Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, so an
    import also depends on the target's packages, except the importer's own (already running)."""
    skip = set(tolerated)
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for imp in imports():
        if not imp.internal or imp.target not in modules():
            continue
        parts = imp.target.split(".")
        own = {".".join(imp.importer.split(".")[:i]) for i in range(1, imp.importer.count(".") + 2)}
        for target in [imp.target, *(".".join(parts[:i]) for i in range(1, len(parts)))]:
            if target != imp.importer and target not in own and (imp.importer, target) not in skip:
                graph[imp.importer].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    graph = import_graph(TOLERATED_EDGES)
    described = [
        "; ".join(f"{a} -> {b}" for a in group for b in sorted(graph[a] & set(group))) for group in cycles(graph)
    ]
    assert not described


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_package_init_files_count_in_the_graph():
    """``from ..unlearning.registry import x`` runs ``unlearning/__init__.py`` too: the graph has that edge."""
    graph = import_graph()
    assert "unlearn_audit.unlearning" in graph["unlearn_audit.remediation"]
    assert "unlearn_audit.probes" not in graph["unlearn_audit.probes.engine"]  # its own package is already running


def test_tolerated_edges_still_exist():
    """A tolerance for an edge that is gone would silently excuse its return: delete it instead."""
    graph = import_graph()
    stale = [f"{a} -> {b}" for a, b in TOLERATED_EDGES if b not in graph[a]]
    assert not stale, f"remove from TOLERATED_EDGES: {stale}"


def test_modules_stay_readable():
    long = []
    for path in modules().values():
        rel = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and rel not in PENDING_SPLITS:
            long.append(f"{rel}: {lines} lines")
    assert not long, f"split these (at most {MAX_LINES} lines a module): {long}"


def test_layers_rank_packages_and_unlisted_modules():
    assert layer_of("unlearn_audit.stats.ratio") < layer_of("unlearn_audit.probes.engine") < layer_of("unlearn_audit")
    assert layer_of("unlearn_audit.audit") < layer_of("unlearn_audit.cli") == layer_of("unlearn_audit.cli.check")
    assert layer_of("unlearn_audit.console") == len(LAYERS)


def test_the_rules_catch_a_violation():
    """A rule that cannot fail proves nothing: planted forbidden imports are reported."""
    torch_in_stats = Import(f"{TOP}.stats.planted", "torch", 1)
    audit_in_io = Import(f"{TOP}.io.planted", f"{TOP}.audit", 2)
    found = [*imports(), torch_in_stats, audit_in_io]
    stats = [*_in("stats"), torch_in_stats.importer]
    assert _violations(stats, ("stats",), {"numpy", "scipy"}, found) == [f"{TOP}.stats.planted:1 imports torch"]
    io = [*_in("io"), audit_in_io.importer]
    allowed = ("io", "errors", "version", "device", "progress", "inference")
    assert _violations(io, allowed, _third_party_anywhere(), found) == [f"{TOP}.io.planted:2 imports {TOP}.audit"]
