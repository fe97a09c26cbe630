"""Notebooks: every notebook runs end to end on the smoke profile through ``emqlib.harness.reproduce`` and
writes its CSVs and figures; the source notebooks stay thin, output-free and untouched; parameters
are checked before anything runs."""
from __future__ import annotations

import hashlib
import json
import re

import nbformat
import pandas as pd
import pytest

from emqlib.harness import paths, reproduce as rep
from emqlib.harness.parameters import check_notebook
from emqlib.harness.results import PRODUCERS, load_result

# what each notebook must leave behind: (CSVs in results/, PNGs in figures/)
EXPECTED = {
    "00_quickstart.ipynb": (["quickstart_eval.csv"], ["bit_accuracy.png"]),
    "01_activation_alignment.ipynb": (["activation_alignment.csv"], ["activation_alignment.png"]),
    "02_shared_bn.ipynb": (["shared_bn.csv", "shared_bn_gaps.csv", "quant_core_check.csv"],
                           ["shared_bn.png", "quant_core_check.png"]),
    "03_gradient_angles.ipynb": (["gradient_angles.csv", "depth_trends.csv"], ["gradient_angles.png"]),
    "04_pruning.ipynb": (["regime_check.csv", "convergence.csv", "pruning.csv", "sampler_choice.csv", "ranking.csv",
                          "pruning_rates.csv"], ["regime.png", "pruning.png"]),
    "05_training_cost.ipynb": (["training_cost.csv"], ["training_cost.png"]),
    "06_acs.ipynb": (["acs_fractions.csv", "acs_schedule.csv", "acs_interval.csv", "acs_baselines.csv",
                      "acs_baselines_long.csv", "acs_cost.csv", "acs_split.csv", "acs_no_distillation.csv",
                      "acs_transfer.csv", "acs_overlap.csv", "acs_vit.csv"],
                     ["acs.png", "acs_baselines.png", "acs_ablations.png"]),
    "07_label_noise.ipynb": (["label_noise.csv", "label_noise_long.csv"], ["label_noise.png"]),
    "08_score_extraction.ipynb": (["score_extraction.csv"], ["score_extraction.png"]),
    "09_claims.ipynb": (["claims.csv", "study_costs.csv"], ["claims_forest.png"]),
    # the teaching notebook (STYLE.md 13) writes one EMQ step inline beside docs/method.md's equations and compares
    # it with the library; it saves no result, and like the others it defines no function or class
    "10_emq_by_hand.ipynb": ([], []),
}
# the study notebooks: each ends with a "What we found" cell (emqlib.harness.findings)
FINDINGS = [name for name in EXPECTED if "01" <= name[:2] <= "08"]
SOURCES = rep.notebooks()
DEFINITION = re.compile(r"^\s*(async\s+def|def|class)\s", re.MULTILINE)  # a function or class defined in a cell


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _folders(base) -> dict:
    return {"EMQ_RUNS_DIR": base / "runs", "EMQ_RESULTS_DIR": base / "results", "EMQ_FIGURES_DIR": base / "figures"}


def _environment(mp: pytest.MonkeyPatch, base) -> None:
    """Temporary folders and one thread per kernel (tiny models; no oversubscription on 2 cores)."""
    for name, folder in _folders(base).items():
        mp.setenv(name, str(folder))
    mp.setenv("OMP_NUM_THREADS", "1")
    mp.setenv("MKL_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """One ``reproduce`` call over every notebook at the smoke profile, in temporary folders."""
    base = tmp_path_factory.mktemp("reproduce")
    before = {p.name: _digest(p) for p in SOURCES}
    printed: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        _environment(mp, base)
        record = rep.reproduce("smoke", echo=lambda *a, end="\n", flush=False: printed.append(" ".join(map(str, a)) + end))
    return {"base": base, "record": record, "lines": "".join(printed).splitlines(), "before": before,
            **_folders(base)}


# ---------------------------------------------------------------- the run

@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_writes_its_results_and_figures(reproduced, name):
    csvs, pngs = EXPECTED[name]
    for csv in csvs:
        path = reproduced["EMQ_RESULTS_DIR"] / csv
        assert path.exists() and path.stat().st_size > 0, f"{name} did not write {csv}"
        assert len(pd.read_csv(path)) > 0, f"{csv} has no rows"
    for png in pngs:
        path = reproduced["EMQ_FIGURES_DIR"] / png
        assert path.exists() and path.stat().st_size > 1000, f"{name} did not draw {png}"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    executed = reproduced["EMQ_RESULTS_DIR"] / "notebooks" / name
    assert executed.exists(), f"no executed copy of {name}"
    nb = nbformat.read(executed, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'profile = "smoke"' in injected[0].source
    if pngs:
        assert any(o.get("output_type") == "display_data" or "image/png" in o.get("data", {})
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs), f"{name} shows no figure"
    if name in FINDINGS:  # the last cell says what the notebook found, generated from its results
        last = [c for c in nb.cells if c.cell_type == "code"][-1]
        shown = "".join(o.get("data", {}).get("text/markdown", "") for o in last.outputs)
        assert shown.startswith("## What we found\n"), f"{name} does not end with what it found"


@pytest.mark.slow
def test_every_source_notebook_is_executed_and_left_untouched(reproduced):
    executed = reproduced["EMQ_RESULTS_DIR"] / "notebooks"
    assert [p.name for p in SOURCES] == sorted(p.name for p in executed.glob("*.ipynb"))
    assert {p.name: _digest(p) for p in SOURCES} == reproduced["before"]
    assert set(EXPECTED) <= {p.name for p in SOURCES}


@pytest.mark.slow
def test_timings_are_recorded_and_one_line_is_printed_per_notebook(reproduced):
    path = reproduced["EMQ_RESULTS_DIR"] / "reproduce_smoke.json"
    record = json.loads(path.read_text())
    assert record["profile"] == "smoke" and record["status"] == "ok" and record["complete"]
    assert set(record["notebooks"]) == set(record["notebook_status"]) == {p.name for p in SOURCES}
    assert all(seconds > 0 for seconds in record["notebooks"].values())
    assert set(record["notebook_status"].values()) == {"ok"}
    assert record["total_seconds"] == pytest.approx(sum(record["notebooks"].values()), abs=0.2)
    assert isinstance(record["machine"], str)
    assert record["workers"] == rep.default_workers("smoke") == 1  # the smoke profile trains in the kernel
    assert reproduced["record"]["finished_runs_at_start"] == 0  # the first run started from an empty cache
    cold = json.loads((reproduced["EMQ_RESULTS_DIR"] / "reproduce_smoke_cold.json").read_text())
    assert cold["notebooks"] == reproduced["record"]["notebooks"] and cold["finished_runs_at_start"] == 0
    for p in SOURCES:
        lines = [line for line in reproduced["lines"] if p.name in line]
        assert len(lines) == 1 and re.search(r"\d+\.\d s$", lines[0]), reproduced["lines"]


@pytest.mark.slow
def test_a_second_run_reuses_the_cache_and_keeps_the_other_timings(reproduced):
    runs = sorted(p.name for p in reproduced["EMQ_RUNS_DIR"].iterdir())
    with pytest.MonkeyPatch.context() as mp:
        _environment(mp, reproduced["base"])
        record = rep.reproduce("smoke", only=["03"], echo=lambda *a, **k: None)
    assert sorted(p.name for p in reproduced["EMQ_RUNS_DIR"].iterdir()) == runs  # nothing trained again
    assert record["complete"] and set(record["notebooks"]) == {p.name for p in SOURCES}
    assert record["command"].endswith("--only 03")
    cold = json.loads((reproduced["EMQ_RESULTS_DIR"] / "reproduce_smoke_cold.json").read_text())
    assert cold["command"].endswith("--profile smoke")  # a warm or partial run keeps the cold record


# ---------------------------------------------------------------- the source notebooks

@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_source_notebook_is_thin_and_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "emqlib"
    assert nb.metadata["kernelspec"]["language"] == "python"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"cell {cell.get('id')} has outputs"
        assert not DEFINITION.search(cell.source), f"cell {cell.get('id')} defines a function or class"
    first = code[0]
    assert "parameters" in first.metadata.get("tags", []), "the first code cell is not tagged 'parameters'"
    assert re.match(r"profile\s*=", first.source), "the parameters cell does not start with `profile = ...`"
    assert any(c.cell_type == "markdown" for c in nb.cells)


def test_notebooks_are_found_in_numeric_order_and_selected_by_number_or_name():
    names = [p.name for p in rep.notebooks()]
    assert names == sorted(names) and names[0].startswith("00_")
    assert [p.name for p in rep.notebooks(["4", "02"])] == ["02_shared_bn.ipynb", "04_pruning.ipynb"]
    assert [p.name for p in rep.notebooks(["06_acs"])] == ["06_acs.ipynb"]
    with pytest.raises(ValueError, match="no notebook '99'"):
        rep.notebooks(["99"])


# ---------------------------------------------------------------- parameter and kernel checks

def test_check_notebook_accepts_the_declared_types():
    path = paths.NOTEBOOKS / "05_training_cost.ipynb"
    assert check_notebook(path, {"profile": "smoke", "n_seeds": 3, "fraction": 1}) == {
        "profile": "smoke", "n_seeds": 3, "fraction": 1.0}
    assert check_notebook(paths.NOTEBOOKS / "04_pruning.ipynb", {"n_seeds": 2, "rate": 1, "rates_seeds": 1}) == {
        "n_seeds": 2, "rate": 1.0, "rates_seeds": 1}


@pytest.mark.parametrize("parameters, message", [
    ({"profile": 3}, r"05_training_cost.ipynb: parameter 'profile' must be of type str"),
    ({"n_seeds": "two"}, r"05_training_cost.ipynb: parameter 'n_seeds' must be of type int"),
    ({"n_seeds": 2.5}, r"parameter 'n_seeds' must be of type int"),
    ({"n_seeds": True}, r"parameter 'n_seeds' must be of type int"),
    ({"fraction": "0.2"}, r"parameter 'fraction' must be of type float"),
    ({"seeds": 2}, r"05_training_cost.ipynb: unknown parameter 'seeds'"),
    ({"rate": 0.8}, r"05_training_cost.ipynb: unknown parameter 'rate'"),  # notebook 04's, not 05's
    ({"profile": "gpu"}, r"parameter 'profile' must be one of \['smoke', 'cpu', 'paper'\]"),
    ({"n_seeds": 0}, r"05_training_cost.ipynb: parameter 'n_seeds' is a count: give a whole number >= 1, got 0"),
    ({"n_seeds": -1}, r"parameter 'n_seeds' is a count: give a whole number >= 1, got -1"),
])
def test_check_notebook_rejects_wrong_types_unknown_names_and_counts_below_one(parameters, message):
    with pytest.raises(ValueError, match=message) as error:
        check_notebook(paths.NOTEBOOKS / "05_training_cost.ipynb", parameters)
    assert "\n" not in str(error.value)


def test_a_missing_kernel_says_to_run_make_setup():
    with pytest.raises(rep.KernelMissingError, match="make setup"):
        rep.check_kernel("no-such-kernel-emqlib")


def test_reproduce_refuses_bad_input_before_running_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path / "results"))
    with pytest.raises(ValueError, match="never overwritten"):
        rep.reproduce("smoke", output_dir=paths.NOTEBOOKS)
    with pytest.raises(ValueError, match="unknown profile"):
        rep.reproduce("gpu")
    with pytest.raises(ValueError, match="--workers 0"):
        rep.reproduce("smoke", workers=0)
    assert rep.main(["--profile", "smoke", "--only", "99"]) == 2
    assert "no notebook '99'" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_a_missing_result_names_the_notebook_that_writes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="notebooks/04_pruning.ipynb"):
        load_result("pruning.csv")
    with pytest.raises(FileNotFoundError, match="notebooks/05_training_cost.ipynb"):
        load_result("training_cost.csv")
    assert set(PRODUCERS.values()) <= {p.name for p in SOURCES}


def test_each_notebook_is_expected_to_write_the_results_it_is_named_the_producer_of():
    for name, (csvs, _) in EXPECTED.items():
        assert set(csvs) == {csv for csv, producer in PRODUCERS.items() if producer == name}, name


def test_a_failing_notebook_is_reported_with_its_error_and_recorded(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "emqlib", "display_name": "Python (emqlib)", "language": "python"}
    parameters = nbformat.v4.new_code_cell('profile = "cpu"  # smoke | cpu | paper')
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell('raise RuntimeError("no data for " + profile)')]
    nbformat.write(nb, folder / "00_fails.ipynb")
    monkeypatch.setattr(paths, "NOTEBOOKS", folder)
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path / "results"))
    with pytest.raises(rep.NotebookFailedError, match=r"00_fails.ipynb failed with RuntimeError: no data for smoke"):
        rep.reproduce("smoke", echo=lambda *a, **k: None)
    record = json.loads((tmp_path / "results" / "reproduce_smoke.json").read_text())
    assert record["status"] == "failed" and not record["complete"]
    assert record["notebook_status"] == {"00_fails.ipynb": "failed"}
    executed = nbformat.read(tmp_path / "results" / "notebooks" / "00_fails.ipynb", as_version=4)
    assert any(o.get("output_type") == "error" for c in executed.cells if c.cell_type == "code" for o in c.outputs)
