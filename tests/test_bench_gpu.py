"""The GPU benchmark script, run on the CPU at a tiny size: its table and its GPU-hour arithmetic."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from emqlib.harness import bench_gpu


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("bench_gpu") / "bench_gpu.csv"
    argv = ["--out", str(out), "--steps", "2", "--warmup", "1", "--width", "0.125", "--batch-size", "2",
            "--modes", "eager", "--precisions", "fp32,bf16"]
    if not torch.cuda.is_available():
        argv.append("--allow-cpu")
    assert bench_gpu.main(argv) == 0
    return pd.read_csv(out, dtype={"commit": str})


def test_refuses_a_cpu_run_into_results(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path))
    assert bench_gpu.main(["--allow-cpu", "--steps", "1"]) == 2  # no --out: would write results/
    assert bench_gpu.main(["--out", str(tmp_path / "x.csv"), "--steps", "1"]) == 2  # no --allow-cpu
    assert not list(tmp_path.iterdir())


def step_names(rows: pd.DataFrame) -> list[str]:
    return [f"{b}-bit" if s == "single" else s for s, b in zip(rows.step, rows.bits)]


def test_rows_per_bit_width_and_method(table: pd.DataFrame) -> None:
    assert list(table.columns) == bench_gpu.COLUMNS
    speeds = table[table.metric == "images_per_second"]
    for precision in ("fp32", "bf16"):
        at = speeds[(speeds.precision == precision) & ~speeds.compiled.astype(bool)]
        assert set(step_names(at)) == {"32-bit", "8-bit", "4-bit", "2-bit", "1-bit", "joint", "emq"}
    assert (speeds.value > 0).all() and (speeds.repetitions == 2).all()
    device = "CPU" if not torch.cuda.is_available() else torch.cuda.get_device_name()
    assert speeds.device.str.startswith(device).all()
    assert table[table.metric == "paper_gpu_hours"].value.tolist() == [1.52]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_projected_hours_follow_from_the_measured_speeds(table: pd.DataFrame, precision: str) -> None:
    rows = table[(table.precision == precision) & (table.compiled == False)]  # noqa: E712 (a column, not a bool)
    speeds = rows[rows.metric == "images_per_second"]
    speed = dict(zip(step_names(speeds), speeds.value))
    hours = rows[rows.metric == "projected_gpu_hours"].set_index("method").value
    assert (rows[rows.metric == "projected_gpu_hours"][["epochs", "images"]] == [200, 50_000]).all().all()
    per_image = 200 * 50_000 / 3600  # hours per (image/s)
    assert hours["Dedicated"] == pytest.approx(sum(per_image / speed[f"{b}-bit"] for b in (32, 8, 4, 2, 1)), rel=1e-9)
    assert hours["joint"] == pytest.approx(per_image / speed["joint"], rel=1e-9)
    assert hours["EMQ"] == pytest.approx(per_image / speed["emq"], rel=1e-9)
    assert hours["EMQ + coreset at 80%"] == pytest.approx(0.8 * hours["EMQ"], rel=1e-12)


def test_compiled_mode_times_the_first_step_and_saves_each_setting(monkeypatch, tmp_path) -> None:
    # torch.compile as the identity: the compiled path's bookkeeping, not inductor (minutes on a CPU)
    monkeypatch.setattr(torch, "compile", lambda model, **options: model)
    out = tmp_path / "bench_gpu.csv"
    saved = []
    real_save = bench_gpu.save_csv
    monkeypatch.setattr(bench_gpu, "save_csv", lambda table, path: (saved.append(len(table)), real_save(table, path)))
    argv = ["--out", str(out), "--steps", "1", "--warmup", "0", "--width", "0.125", "--batch-size", "2",
            "--modes", "eager,compiled", "--precisions", "fp32", "--allow-cpu"]
    assert bench_gpu.main(argv) == 0
    table = pd.read_csv(out)
    first = table[table.metric == "first_step_seconds"]
    assert step_names(first) == ["32-bit", "8-bit", "4-bit", "2-bit", "1-bit", "joint", "emq"]
    assert first.compiled.all() and (first.precision == "fp32").all() and (first.value > 0).all()
    assert len(saved) == 2 and saved[0] < saved[1] == len(table)  # saved after eager, again after compiled


def test_readme_block_shows_each_measured_setting_and_names_the_missing(table, monkeypatch, tmp_path) -> None:
    from emqlib.harness import report
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path))
    assert "not measured" in report.gpu_bench_section()
    table.to_csv(tmp_path / "bench_gpu.csv", index=False)
    block = report.gpu_bench_section()
    header = next(line for line in block.splitlines() if line.startswith("|  |"))
    assert header == "|  | eager, fp32 | eager, bf16 |"
    assert "Not measured: compiled, fp32; compiled, bf16" in block
    emq = next(line for line in block.splitlines() if line.startswith("| EMQ (GPU-h"))
    hours = table[(table.metric == "projected_gpu_hours") & (table.method == "EMQ")]
    assert emq == "| EMQ (GPU-h, 200 epochs) | " + " | ".join(f"{v:.2f}" for v in hours.value) + " |"


def test_a_run_replaces_its_settings_rows_and_keeps_the_others(table, tmp_path) -> None:
    out = tmp_path / "bench_gpu.csv"
    table.to_csv(out, index=False)  # eager fp32 and eager bf16, as an earlier lease left them
    argv = ["--out", str(out), "--steps", "1", "--warmup", "0", "--width", "0.125", "--batch-size", "2",
            "--modes", "eager", "--precisions", "bf16", "--commit", "0123456789abcdef", "--allow-cpu"]
    assert bench_gpu.main(argv) == 0
    merged = pd.read_csv(out, dtype={"commit": str})  # the commit named below is all digits
    fp32, old_fp32 = (frame[frame.precision == "fp32"].reset_index(drop=True) for frame in (merged, table))
    pd.testing.assert_frame_equal(fp32, old_fp32)
    bf16 = merged[merged.precision == "bf16"]
    assert len(bf16) == len(table[table.precision == "bf16"])  # replaced, not added
    assert (bf16.torch == torch.__version__).all() and (bf16.commit == "0123456").all()
    assert merged.metric.tolist().count("paper_gpu_hours") == 1


def test_readme_block_names_each_settings_torch_and_commit(table, monkeypatch, tmp_path) -> None:
    from emqlib.harness import report
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path))
    bf16 = table.precision == "bf16"  # rows as older runs wrote them have no source
    renamed = table.assign(torch=bf16.map({True: "9.9", False: None}), commit=bf16.map({True: "abcdef0", False: None}))
    renamed.to_csv(tmp_path / "bench_gpu.csv", index=False)
    block = report.gpu_bench_section()
    assert "Measured with: eager, fp32: not recorded; eager, bf16: torch 9.9, commit abcdef0." in block
