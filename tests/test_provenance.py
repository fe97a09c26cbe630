"""results/provenance.json says what produced the results: commit, profile, seeds, times, CPU, math library."""
from __future__ import annotations

import re
import subprocess

import torch

from emqlib.harness import paths, provenance, reproduce as rep
from emqlib.harness.storage import load_json


def test_provenance_is_written_atomically_with_what_made_the_results(tmp_path, monkeypatch):
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path))
    record = {"profile": "smoke", "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00",
              "status": "ok", "command": "python -m emqlib.harness.reproduce --profile smoke"}
    seeds = provenance.seed_parameters(rep.notebooks(["02", "03", "04"]))
    path = provenance.save_provenance(record, seeds)
    assert path == tmp_path / "provenance.json" and not list(tmp_path.glob("*.tmp*"))
    saved = load_json(path)
    assert {k: saved[k] for k in record} == record
    assert saved["seeds"] == {"02_shared_bn.ipynb": {"n_seeds": 3, "seed": 0},
                              "03_gradient_angles.ipynb": {"n_seeds": 3},
                              "04_pruning.ipynb": {"n_seeds": 3, "rates_seeds": 1}}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True, text=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", saved["commit"]) and saved["commit"] == head
    assert isinstance(saved["uncommitted_changes"], (bool, type(None)))
    assert saved["cpu"]["model"] and saved["cpu"]["cpus"] >= 1
    assert set(saved["cpu"]["instruction_sets"]) <= set(provenance.ISA_FLAGS)
    library = saved["math_library"]
    assert library["torch"] == torch.__version__ and library["threads"] == torch.get_num_threads()
    assert library["build_settings"].get("BLAS_INFO") and any("get_num_threads" in line for line in library["parallel_info"])
    assert set(library["thread_environment"]) == {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}



def test_uncommitted_changes_count_the_code_not_the_outputs_a_run_rewrites(tmp_path):
    assert paths.git_commit(tmp_path) == {"commit": None, "uncommitted_changes": None}  # no git here

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "table.csv").write_text("a\n1\n")
    (tmp_path / "README.md").write_text("# r\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "c")
    assert paths.git_commit(tmp_path)["uncommitted_changes"] is False
    (tmp_path / "results" / "table.csv").write_text("a\n2\n")  # what make reproduce rewrites
    (tmp_path / "README.md").write_text("# r, regenerated\n")
    state = paths.git_commit(tmp_path)
    assert state["uncommitted_changes"] is False and re.fullmatch(r"[0-9a-f]{40}", state["commit"])
    (tmp_path / "code.py").write_text("x = 2\n")
    assert paths.git_commit(tmp_path)["uncommitted_changes"] is True
