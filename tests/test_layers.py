"""The package's structure, read from its code: imports point one way, down the layers, and form no cycle.

Every `import` and `from ... import` in dlkit/ counts, function-level ones included (a lazy import is still a
dependency). A failure names the file, the line and the edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dlkit"

# Lowest first. A module may import modules of its own layer or below, never above.
LAYERS = [
    (
        "foundation",
        [
            "dlkit.errors",
            "dlkit.environment",
            "dlkit.schema",
            "dlkit.overrides",
            "dlkit.internals",
            "dlkit.plots",
            "dlkit.stats",
            "dlkit.metrics",  # the metric language: a report's, a study's and the objective's expressions
            "dlkit.trainer_args",  # Lightning's Trainer arguments: kept, applied by dlkit, or refused and why
            "dlkit.folders",  # the folders a command writes to, checked before anything runs
        ],
    ),
    ("registry", ["dlkit.registry"]),
    ("tracking", ["dlkit.tracking"]),  # MLflow: runs, the recorder, a sweep's records; knows no model
    ("verdict", ["dlkit.verdict"]),  # a study's declaration and decisions: statistics over values, no framework
    ("components and data", ["dlkit.components", "dlkit.data"]),
    ("models", ["dlkit.models"]),
    ("tasks", ["dlkit.tasks", "dlkit.early_stopping"]),  # Lightning modules, and Lightning's early stopping
    ("plugins", ["dlkit.plugins"]),
    ("plan", ["dlkit.plan"]),
    ("build", ["dlkit.build"]),
    ("config", ["dlkit.search", "dlkit.config"]),  # a search's space, study and workers; composing configs
    ("training", ["dlkit.callbacks", "dlkit.ddp", "dlkit.train"]),
    ("sweep", ["dlkit.sweep", "dlkit.slurm", "dlkit.progress"]),  # a sweep's parent, children, progress; SLURM
    ("commands", ["dlkit.check", "dlkit.report", "dlkit.studies"]),
    ("cli", ["dlkit.cli", "dlkit.__main__"]),
    ("api", ["dlkit"]),  # dlkit/__init__.py: dlkit.run, dlkit.plan_for; nothing inside the package imports it
]
# Third-party frameworks a layer must not know.
FORBIDDEN = {
    "components and data": ("hydra", "omegaconf", "mlflow", "pytorch_lightning", "lightning", "lightning_fabric"),
    "models": ("hydra", "omegaconf", "mlflow", "pytorch_lightning", "lightning", "lightning_fabric"),
    "tracking": ("hydra", "omegaconf", "pytorch_lightning", "lightning", "lightning_fabric"),
    "registry": ("hydra", "omegaconf", "mlflow", "pytorch_lightning", "torch"),
    "foundation": ("mlflow", "torch"),
    "verdict": ("hydra", "omegaconf", "mlflow", "pytorch_lightning", "lightning", "torch"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "dlkit") or module in prefixes:
            return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {Path(__file__).name}")


def imports(module: str) -> list[tuple[int, str]]:
    """(line, imported name) for every import in the module: dlkit modules resolved to the module, others as given."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from dlkit import config` imports the module dlkit.config
                child = f"{node.module}.{alias.name}"
                found.append((node.lineno, child if child in MODULES else node.module))
    return found


def edges() -> list[tuple[str, int, str]]:
    return [(m, line, target) for m in MODULES for line, target in imports(m) if target in MODULES and target != m]


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_imports_point_down_the_layers():
    upward = [
        f"dlkit/{MODULES[a].relative_to(PACKAGE)}:{line} imports {b}: the {LAYERS[layer(a)][0]} layer"
        f" may not import the {LAYERS[layer(b)][0]} layer above it"
        for a, line, b in edges()
        if layer(b) > layer(a)
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("name,banned", FORBIDDEN.items())
def test_lower_layers_know_nothing_of_the_frameworks_above_them(name, banned):
    rank = [n for n, _ in LAYERS].index(name)
    wrong = [
        f"dlkit/{MODULES[m].relative_to(PACKAGE)}:{line} imports {target}"
        for m in MODULES
        if layer(m) == rank
        for line, target in imports(m)
        if target.split(".")[0] in banned
    ]
    assert not wrong, f"the {name} layer may not import {', '.join(banned)}:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph: dict[str, list[tuple[int, str]]] = {m: [] for m in MODULES}
    for a, line, b in edges():
        graph[a].append((line, b))
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for _, target in graph[module]:
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = 2
        path.pop()
        return None

    for module in MODULES:
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_checker_sees_a_function_level_import_and_an_upward_edge(tmp_path):
    """The reader itself: a lazy import inside a function is an edge, and registry -> plugins is upward."""
    source = "def f():\n    from dlkit import plugins\n"
    tree = ast.parse(source)
    names = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert names and names[0].lineno == 2
    assert layer("dlkit.plugins") > layer("dlkit.registry")
    assert layer("dlkit.tracking.recorder") == layer("dlkit.tracking.run")
