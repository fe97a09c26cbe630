"""The compile check: notebooks executed eager and compiled from an empty run cache, timed end to end."""
from __future__ import annotations

import pandas as pd
import pytest

from emqlib.harness import compile_check, paths


def test_each_notebook_is_executed_three_ways_in_order_with_one_inductor_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path / "results"))
    calls = []

    def execute(profile, notebook, compile, inductor_cache, scratch):
        calls.append((notebook, compile, inductor_cache, scratch))
        seconds = 150.0 if len(calls) == 2 else 90.0 if compile else 100.0
        return {"seconds": seconds, "notebook": "02_shared_bn", "workers": 2}

    table = compile_check.compile_check("smoke", ["02"], tmp_path, tmp_path / "check.csv", execute)
    assert pd.read_csv(tmp_path / "check.csv", keep_default_na=False, na_values=[""], dtype={"commit": str}).equals(table)
    assert [c[1] for c in calls] == [False, True, True]  # eager, then compiled twice
    assert len({c[2] for c in calls}) == 1 and len({c[3] for c in calls}) == 3  # one inductor cache, three run caches
    ratios = table[table.metric == "compiled_over_eager"]
    assert ratios.value.tolist() == pytest.approx([1.5, 0.9])
    assert ratios.inductor_cache.tolist() == ["empty", "warm"] and ratios.compiled.all()
    seconds = table[table.metric == "notebook_seconds"]
    assert seconds.value.tolist() == [100.0, 150.0, 90.0] and seconds.compiled.tolist() == [False, True, True]
    assert (table.notebook == "02_shared_bn").all() and (table.workers == 2).all() and (table.profile == "smoke").all()


def test_a_failed_execution_names_the_notebook_and_its_output(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="executing 99_missing .EMQ_COMPILE=0. failed"):
        compile_check.execute_notebook("smoke", "99_missing", False, tmp_path / "inductor", tmp_path)


def test_a_notebook_executes_into_its_scratch_folder(tmp_path) -> None:
    done = compile_check.execute_notebook("smoke", "03", False, tmp_path / "inductor", tmp_path)
    assert done["seconds"] > 0 and done["notebook"] == "03_gradient_angles" and done["workers"] == 1
    assert [p.name for p in (tmp_path / "notebooks").glob("*.ipynb")] == ["03_gradient_angles.ipynb"]
    assert any((tmp_path / "runs").glob("*/done.json"))  # its own run cache, not the repository's
    assert (tmp_path / "results" / "claims.csv").exists()  # a copy of the repository's results: earlier choices
    written = (tmp_path / "results" / "gradient_angles.csv").read_bytes()
    assert written != (paths.ROOT / "results" / "gradient_angles.csv").read_bytes()  # the smoke run's own


def test_readme_block_tabulates_each_notebook_and_its_ratios(tmp_path, monkeypatch) -> None:
    from emqlib.harness import report

    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path))
    assert report.compile_check_section() == "(run `python -m emqlib.harness.compile_check --only NN`)"
    seconds = {("02_shared_bn", False): [300.0], ("02_shared_bn", True): [600.0, 360.0],
               ("04_pruning", False): [500.0], ("04_pruning", True): [550.0, 450.0]}
    compile_check.compile_check("cpu", ["02_shared_bn", "04_pruning"], tmp_path / "scratch",
                                tmp_path / "compile_check.csv", lambda profile, notebook, compile, *_: {
                                    "seconds": seconds[notebook, compile].pop(0), "notebook": notebook, "workers": 2})
    block = report.compile_check_section()
    assert "profile cpu" in block
    assert "| notebook | eager (s) | compiled, empty inductor cache (s) | compiled, warm inductor cache (s) |" in block
    assert "| 02_shared_bn | 300 | 600 | 360 | 2.00x | 1.20x |" in block
    assert "| 04_pruning | 500 | 550 | 450 | 1.10x | 0.90x |" in block
