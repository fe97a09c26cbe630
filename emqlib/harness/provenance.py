"""``results/provenance.json``: what produced the results (commit, profile, seeds, times, CPU and instruction set,
math library and threads, torch version, worker processes). Training on CPU is bit-identical only on the same
machine and library build, so the file says which one it was; ``make reproduce`` writes it.
"""
from __future__ import annotations

import ast
import contextlib
import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path

from . import paths
from .pool import threads_per_worker
from .storage import save_json

ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile",
             "amx_bf16", "asimd", "sve")  # the instruction sets that change which math kernels run


def _cpu() -> dict:
    """CPU model and the instruction sets of :data:`ISA_FLAGS` it has (from /proc/cpuinfo where there is one)."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    return {"model": model, "cpus": os.cpu_count(), "instruction_sets": [f for f in ISA_FLAGS if f in flags]}


def _math_library() -> dict:
    """torch's version, the CPU kernel path it picked, its BLAS/LAPACK and threading (torch.__config__)."""
    import torch

    built = torch.__config__.show()
    components = [line.strip()[2:] for line in built.splitlines()
                  if line.strip().startswith("- ") and not line.strip().startswith("- Build settings")]
    settings = dict(re.findall(r"(BLAS_INFO|LAPACK_INFO|USE_MKL|USE_MKLDNN|USE_OPENMP)=([^,\s]+)", built))
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)()
    return {"torch": torch.__version__, "cpu_capability": capability, "components": components,
            "build_settings": settings, "threads": torch.get_num_threads(),
            "thread_environment": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
            "parallel_info": [line.strip() for line in torch.__config__.parallel_info().splitlines() if line.strip()]}


def seed_parameters(selected: Sequence[Path]) -> dict:
    """Each notebook's seed parameters as declared in its ``parameters`` cell (``n_seeds``: seeds
    0 .. n_seeds - 1; ``seed``: the one seed of a single-run study), e.g. {"05_training_cost.ipynb": {"n_seeds": 2}}."""
    import papermill

    found = {p.name: {name: ast.literal_eval(spec["default"]) for name, spec in
                      papermill.inspect_notebook(str(p)).items() if "seed" in name} for p in selected}
    return {name: seeds for name, seeds in found.items() if seeds}


def machine() -> dict:
    """The machine and libraries a result was computed with (a CPU result is bit-identical only on the same)."""
    return {"python": platform.python_version(), "platform": platform.platform(terse=True), "cpu": _cpu(),
            "math_library": _math_library()}


def save_provenance(record: dict, seeds: dict) -> Path:
    """Write what produced the results to ``results/provenance.json`` atomically: commit, profile, seeds,
    start and end time, CPU, math library, and the worker processes with their threads."""
    workers = record.get("workers")
    return save_json(paths.results_dir() / "provenance.json", {
        **{k: record[k] for k in ("profile", "started", "finished", "status", "command")}, **paths.git_commit(),
        "seeds": seeds, **machine(), "workers": workers,
        "threads_per_worker": threads_per_worker(workers) if workers and workers > 1 else None})
