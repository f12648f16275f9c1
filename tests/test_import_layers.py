"""Imports flow one way: each module imports only from its own layer or the layers below it, and never a
private (`_name`) from another module. Run alone: `python -m pytest tests/test_import_layers.py -q`;
`python tests/test_import_layers.py` prints the import graph, layer by layer."""

from __future__ import annotations

import ast
from pathlib import Path

import dlmtune

PACKAGE = Path(dlmtune.__file__).parent
# Top to bottom. A module belongs to the first layer with a prefix matching its dotted name.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("cli", ("dlmtune.cli", "dlmtune.__main__", "dlmtune.errors")),
    ("recipes", ("dlmtune.demo", "dlmtune.demo_rl", "dlmtune.train", "dlmtune.evaluate", "dlmtune.eval_runs", "dlmtune.rl", "dlmtune.bench", "dlmtune.bench_sampling",
                 "dlmtune.report", "dlmtune.entropy_picture")),
    ("trainer", ("dlmtune.trainer", "dlmtune.nonfinite", "dlmtune.guards")),
    ("building blocks", ("dlmtune.objectives", "dlmtune.sampling", "dlmtune.data", "dlmtune.models")),
    ("tasks", ("dlmtune.tasks",)),
    ("generators", ("dlmtune.synthetic",)),
    ("utilities", ("dlmtune.io", "dlmtune.stats", "dlmtune.workers", "dlmtune.config", "dlmtune.tokenizer", "dlmtune")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) of every dlmtune import in the file, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlmtune") and not node.level:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names if alias.name.startswith("dlmtune")]
    return found


def violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for line, target, names in imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if layer_of(target) < layer_of(module):
                problems.append(f"{where}: {module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                                f"({LAYERS[layer_of(target)][0]}), a layer above it")
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != module:
                problems.append(f"{where}: {module} imports private {', '.join(private)} from {target}")
    return problems


def graph() -> str:
    """Each layer's modules with the dlmtune modules each imports (lazy imports included)."""
    lines = []
    modules = sorted((module_name(path), path) for path in PACKAGE.rglob("*.py"))
    for index, (layer, _) in enumerate(LAYERS):
        lines.append(f"{layer}:")
        for module, path in modules:
            if layer_of(module) == index:
                targets = sorted({target for _, target, _ in imports(path) if target != module})
                lines.append(f"  {module} -> {', '.join(targets) if targets else '(none)'}")
    return "\n".join(lines)


def test_imports_flow_one_way():
    assert violations() == []


def test_the_graph_lists_every_module_with_its_imports():
    text = graph()
    for path in PACKAGE.rglob("*.py"):
        assert text.count(f"  {module_name(path)} -> ") == 1
    assert "dlmtune.trainer" in text.split("  dlmtune.bench -> ")[1].splitlines()[0]


def test_the_check_catches_an_upward_and_a_private_import(tmp_path, monkeypatch):
    """The same check on a copy of the package with one bad import added to a low module."""
    import shutil
    import sys

    copy = tmp_path / "dlmtune"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("assets", "__pycache__"))
    target = copy / "synthetic" / "splits.py"
    target.write_text(target.read_text() + "\nfrom dlmtune.demo import run_demo\nfrom dlmtune.io import _hidden\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", copy)
    found = violations()
    assert len(found) == 2
    assert "dlmtune.synthetic.splits (generators) imports dlmtune.demo (recipes)" in found[0]
    assert "private _hidden" in found[1]


if __name__ == "__main__":
    print(graph())
    print("\n".join(violations()) or "no upward or private imports")
