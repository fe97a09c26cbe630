"""Dependencies run downward: no emqlib module imports one from a higher layer (data and
quantizers at the bottom, then configuration and models, training, the run cache, experiments
and reporting, entry points on top). Imports are read from the source with ast, so a module
that imports a higher one inside a function is caught as well."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "emqlib"

LAYERS = [
    # foundations: files, seeds, bit-widths, the correction formula, fractions and budgets, cost arithmetic
    {"paths", "storage", "seeding", "bits", "correction", "budgets", "cost", "checkpoint", "labels", "stats", "grading"},
    # data, quantizers and prepare/convert, and distillation losses
    {"data", "quant", "bn", "qat", "distill"},
    # coreset scores and rules, configuration, models, evaluation
    {"coreset", "coreset.scores", "coreset.select", "config", "models", "models.resnet", "models.mobilenet",
     "models.vit", "inference", "analysis"},
    # training
    {"coreset.sampling", "distributed", "build", "train"},
    # the run cache, and the workers that fill it
    {"runs", "pool"},
    # experiments and reporting
    {"experiments", "bench", "bench_gpu", "results", "plots", "report", "claims", "explorer", "export"},
    # entry points
    {"reproduce", "__main__", "parameters", "compile_check"},
]
# upward imports made on purpose, each inside a function
ALLOWED_UPWARD = {
    # the torchrun entry point lives beside the DDP helpers the trainer uses, and trains through the run cache
    ("distributed", "runs"),
}


def layer_of(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if module in layer:
            return i
    raise AssertionError(f"emqlib.{module} is in no layer of tests/test_layers.py; add it to one")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def imported_modules(path: Path) -> set[str]:
    """The emqlib modules ``path`` imports (relative or absolute), as dotted names inside emqlib."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "emqlib":
                target = node.module.split(".")[1:]
            else:
                continue
            stem = ".".join(target)
            # "from . import paths" names a module; "from .data import X" names attributes
            for alias in node.names:
                sub = f"{stem}.{alias.name}" if stem else alias.name
                found.add(sub if (PACKAGE / (sub.replace(".", "/") + ".py")).exists()
                          or (PACKAGE / sub.replace(".", "/")).is_dir() else stem)
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("emqlib.")}
    return {m for m in found if m and m != name}


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    name = module_name(path)
    if name == "__init__":
        return
    upward = sorted(m for m in imported_modules(path)
                    if layer_of(m) > layer_of(name) and (name, m) not in ALLOWED_UPWARD)
    assert not upward, f"emqlib.{name} (layer {layer_of(name)}) imports higher layers: {upward}"


def test_the_checker_sees_relative_and_nested_imports() -> None:
    assert "paths" in imported_modules(PACKAGE / "data.py")  # from . import paths
    assert "qat" in imported_modules(PACKAGE / "models" / "__init__.py")  # from ..qat import ...
    assert "runs" in imported_modules(PACKAGE / "distributed.py")  # an import inside a function
    assert "coreset.sampling" in imported_modules(PACKAGE / "train.py")
