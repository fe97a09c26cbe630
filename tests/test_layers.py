"""Two parts, each layered: the method (``emqlib/``, what a student reads to learn EMQ) and the
harness (``emqlib/harness/``: configuration, run cache, studies, claims, reports, tools).

The rule for both parts: a module imports only modules of its own part in a lower layer, or (harness
only) any module of the method; the method never imports the harness. So there are no upward
imports and no import circles. Imports are read from the source with ast, so a module that imports
another inside a function is caught as well."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "emqlib"

METHOD = [
    # bit-widths, seeded draws, the correction formula, class budgets
    {"bits", "seeding", "correction", "budgets"},
    # the fused speed path of the quantizers, BatchNorm modes, images and batches
    {"fused", "bn", "data"},
    # the quantizers (their composed definitions) and quantized layers
    {"quant"},
    # prepare/convert, forward passes, distillation, coreset scores and selection rules
    {"qat", "inference", "distill", "coreset.scores", "coreset.select"},
    # models, the samplers (and the coreset package that gathers scores, rules and samplers)
    {"models", "models.resnet", "models.mobilenet", "models.vit", "coreset.samplers", "coreset"},
    # the training loops
    {"train"},
]
HARNESS = [
    # files, paths, statistics, result labels, targets, error lines, notebook parameters
    {"paths", "storage", "stats", "labels", "targets", "errors", "parameters"},
    # data sets, checkpoints, result tables, grading, the prior coreset methods the papers compare with
    {"datasets", "checkpoint", "results", "grading", "baselines"},
    # the run configuration and profiles, the cost of a run, the checks a run passes before it feeds a claim
    {"config", "cost", "validity"},
    # processes under torchrun
    {"distributed"},
    # how a run is built, and trained; what the benchmarks time and how
    {"build"},
    {"trainer", "timing"},
    # the run cache, and the workers that fill it
    {"runs"},
    {"pool"},
    # what produced the results
    {"provenance"},
    # measurements, claims, what every study shares, the run shipped for the quickstart
    {"analysis", "claims", "studies", "studies.common", "shipped"},
    # figures (the claims' forest plot recomputes each claim's per-seed values)
    {"plots"},
    # one study per notebook (those that build on another's above it), the report, the static site, the explorer,
    # export; what each notebook found; the benchmarks (they train what notebooks 04 and 05 chose)
    {"studies.alignment", "studies.shared_bn", "studies.acs", "studies.costs", "studies.pruning", "site",
     "explorer", "export"},
    {"studies.cost", "studies.angles", "studies.label_noise", "studies.extraction", "findings"},
    # the generated blocks of README.md (its findings) and docs/engineering.md
    {"report"},
    {"bench", "bench_gpu"},
    # entry points, and the exercises of notebook 10
    {"reproduce", "cli", "compile_check", "exercises"},
]
# upward imports made on purpose, each inside a function
ALLOWED_UPWARD = {
    # the torchrun entry point lives beside the DDP helpers the trainer uses, and trains through the run cache
    ("harness.distributed", "harness.runs"),
}


def place(module: str) -> tuple[str, int]:
    """(part, layer) of a dotted module name inside emqlib."""
    part, name = ("harness", module.split(".", 1)[1]) if module.startswith("harness.") else ("method", module)
    for i, layer in enumerate(HARNESS if part == "harness" else METHOD):
        if name in layer:
            return part, i
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
    return {m for m in found if m and m != name and m != "harness"}


def allowed(importer: str, imported: str) -> bool:
    if (importer, imported) in ALLOWED_UPWARD:
        return True
    (part, layer), (other_part, other_layer) = place(importer), place(imported)
    if part != other_part:
        return part == "harness"  # the harness uses the method; the method never the harness
    # below it, or a package gathering its own modules (emqlib.coreset, emqlib.models)
    return other_layer < layer or (other_layer == layer and imported.startswith(importer + "."))


MODULES = [p for p in sorted(PACKAGE.rglob("*.py")) if module_name(p) not in ("__init__", "__main__", "harness")]


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_no_module_imports_a_higher_layer_or_the_harness_from_the_method(path: Path) -> None:
    name = module_name(path)
    wrong = sorted(m for m in imported_modules(path) if not allowed(name, m))
    assert not wrong, f"emqlib.{name} ({'/'.join(map(str, place(name)))}) imports {wrong}"


def test_the_entry_point_is_only_a_launcher() -> None:
    assert imported_modules(PACKAGE / "__main__.py") == {"harness.cli"}


def test_the_checker_sees_relative_and_nested_imports() -> None:
    assert "harness.paths" in imported_modules(PACKAGE / "harness" / "runs.py")  # from . import paths
    assert "qat" in imported_modules(PACKAGE / "models" / "__init__.py")  # from ..qat import ...
    assert "harness.runs" in imported_modules(PACKAGE / "harness" / "distributed.py")  # inside a function
    assert "bits" in imported_modules(PACKAGE / "harness" / "runs.py")  # from ..bits import ...
    assert not allowed("quant", "harness.config") and allowed("harness.config", "quant")
    assert not allowed("bits", "quant") and not allowed("harness.paths", "harness.runs")
    assert allowed("quant", "fused") and not allowed("fused", "quant")
