"""The benchmark (`make bench`): the smoke version end to end, and its pure helpers against hand counts."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch
from torch import nn

from emqlib.harness import bench, plots, timing
from emqlib.harness.config import config_hash
from emqlib.harness.cost import ideal_pass_ratio, pass_equivalents
from emqlib.harness.runs import load_run
from emqlib.harness.studies.pruning import EMQ_DESIGNS

# metric names of each of the six measurement families
FAMILIES = {
    "1 quantization overhead": ["quant_step_ratio", "step_time"],
    "2 bias correction overhead": ["bias_correction_ratio"],
    "3 method cost": ["method_wallclock", "method_sample_passes", "method_avg_accuracy", "speedup_wallclock",
                      "speedup_passes", "ideal_pass_ratio"],
    "4 selection overhead": ["selection_share"],
    "5 efficiency": ["step_gflops", "matmul_gflops", "efficiency"],
    "6 scaling": ["epoch_time", "scaling_slope", "scaling_r2"],
    "7 integer deployment": ["export_size", "export_packed_size", "export_latency", "export_shift_cost"],
}


@pytest.fixture(scope="module")
def smoke(one_thread, tmp_path_factory) -> tuple[pd.DataFrame, object]:
    """`python -m emqlib.harness.bench --profile smoke` into a temporary folder with its own run cache, and its own
    results folder, where notebook 04 chose EMQ's sampler."""
    root = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMQ_RUNS_DIR", str(root / "runs"))
        mp.setenv("EMQ_RESULTS_DIR", str(root / "results"))
        (root / "results").mkdir()
        pd.DataFrame({"chosen": [list(EMQ_DESIGNS)[-1]]}).to_csv(root / "results" / "sampler_choice.csv", index=False)
        assert bench.main(["--profile", "smoke", "--out-csv", str(root / "bench.csv"),
                           "--out-png", str(root / "bench.png")]) == 0
        yield pd.read_csv(root / "bench.csv"), root


@pytest.mark.slow
def test_smoke_bench_writes_every_family(smoke):
    table, root = smoke
    assert list(table.columns) == bench.COLUMNS
    for family, metrics in FAMILIES.items():
        for metric in metrics:
            values = table.loc[table.metric == metric, "value"]
            assert len(values) > 0, f"family {family}: no {metric} row"
            assert values.map(math.isfinite).all(), f"family {family}: {metric} not finite"
    assert table.what.notna().all()
    steps = table[table.metric == "step_time"]  # the facts are columns, not text
    assert set(steps.method) == {"plain", "emq"} and (steps.threads == 1).all() and (steps.repetitions == 5).all()
    assert set(steps.bits.astype(int)) == {32, 8, 4, 2} and (steps.model == "resnet8").all()
    assert (root / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_smoke_bench_methods_come_from_the_run_cache(smoke):
    table, root = smoke
    cached = {p.name for p in (root / "runs").iterdir() if not p.name.startswith(".")}
    hashes = {config_hash(c) for c in bench.method_configs("smoke").values()}
    assert hashes <= cached
    walls = table[table.metric == "method_wallclock"]
    assert len(walls) == 4 and set(walls.run) == hashes and (walls.seed == 0).all()
    # each method's average accuracy is its cached run's mean final test accuracy
    for name, config in bench.method_configs("smoke").items():
        run = load_run(root / "runs" / config_hash(config))
        row = table[(table.metric == "method_avg_accuracy") & (table.method == name)]
        assert row.run.item() == config_hash(config)
        assert row.value.item() == pytest.approx(run.final_metrics().test_accuracy.mean(), abs=1e-9)


# ---------------------------------------------------------------- helpers

def test_flops_of_a_linear_layer_match_the_hand_count():
    layer, x = nn.Linear(64, 32, bias=False), torch.randn(8, 64)
    forward = 2 * 8 * 64 * 32
    assert bench.count_flops(lambda: layer(x)) == forward
    # backward of a layer whose input needs no gradient: the weight gradient only, one more matmul
    assert bench.count_flops(lambda: layer(x).sum().backward()) == 2 * forward


def test_flops_of_a_conv_layer_match_the_hand_count():
    conv, x = nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.randn(2, 3, 8, 8)
    assert bench.count_flops(lambda: conv(x)) == 2 * (2 * 4 * 8 * 8) * (3 * 3 * 3)


def test_linear_fit():
    slope, intercept, r2 = bench.linear_fit([1, 2, 3, 4], [3, 5, 7, 9])
    assert (slope, intercept, r2) == pytest.approx((2.0, 1.0, 1.0))
    assert bench.linear_fit([1, 2, 3, 4], [1, 3, 2, 4])[2] < 1


def test_cost_weighting_and_the_ideal_pass_ratio():
    assert pass_equivalents(sample_passes=300, teacher_forwards=60, selection_forwards=30) == pytest.approx(330)
    assert ideal_pass_ratio(9, 4, 0.2) == pytest.approx(11.25)
    assert ideal_pass_ratio(5, 5, 0.2) == pytest.approx(5.0)


def test_method_rows_divide_dedicated_by_each_method():
    def method(name, wall, passes, accuracy, selection=0.0, served=None):
        return {"method": name, "wall_seconds": wall, "selection_seconds": selection, "sample_passes": passes,
                "selection_forwards": 0, "pass_equivalents": passes, "avg_accuracy": accuracy, "run": f"run-{name}",
                "trained": "2026-01-01T00:00", "speedup_wall": 80.0 / wall, "speedup_passes": 400 / passes,
                "served_bits": served, "speedup_wall_served": 2 * 80.0 / wall, "speedup_passes_served": 2 * 400 / passes}
    cost = pd.DataFrame([method("dedicated", 80.0, 400, 90.0), method("joint", 40.0, 400, 89.0),
                         method("emq", 40.0, 400, 89.5), method("emq+coreset", 10.0, 80, 88.0, 1.0, "2,4,8,32")])
    config = bench.method_configs("smoke")["emq+coreset"]
    rows = pd.DataFrame(bench.method_rows(cost, config, seconds_per_pass_now=0.05, now="test"))
    pick = lambda metric, name: rows[(rows.metric == metric) & (rows.method == name)].value.item()  # noqa: E731
    assert pick("speedup_wallclock", "emq+coreset") == pytest.approx(8.0)
    assert pick("speedup_passes", "emq+coreset") == pytest.approx(5.0)
    assert pick("accuracy_gap", "emq+coreset") == pytest.approx(2.0)
    assert pick("selection_share", "emq+coreset") == pytest.approx(10.0)
    assert pick("run_slowdown", "dedicated") == pytest.approx(80.0 / 400 / 0.05)
    served = rows[rows.metric == "speedup_wallclock_served"]
    assert served.method.tolist() == ["emq+coreset"] and served.bits.tolist() == ["2,4,8,32"]
    assert set(rows[rows.method == "joint"].run) == {"run-joint"} and (rows.seed.dropna() == 0).all()


def test_time_interleaved_times_every_variant_and_restores_threads():
    calls = []
    torch.set_num_threads(threads := 2)
    variants = [timing.Variant("a", lambda: calls.append(("a", torch.get_num_threads())), threads=1),
                timing.Variant("b", lambda: calls.append(("b", torch.get_num_threads())))]
    times = timing.time_interleaved(variants, reps=3, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    assert ("a", 1) in calls and ("b", threads) in calls and ("b", 1) not in calls
    assert torch.get_num_threads() == threads
    torch.set_num_threads(1)


def test_compiling_pays_after_its_seconds_over_the_seconds_each_epoch_saves():
    assert bench.break_even_epochs(first_compiled=40.0, eager=8.0, compiled=7.0) == pytest.approx(33.0)
    assert bench.break_even_epochs(first_compiled=10.0, eager=4.0, compiled=2.0) == pytest.approx(4.0)
    assert bench.break_even_epochs(first_compiled=10.0, eager=4.0, compiled=4.5) == math.inf  # never pays


@pytest.mark.slow
def test_whole_epochs_are_timed_eager_and_compiled_at_one_thread():
    work = timing.Workload(bench.profile_config("smoke", method="emq", model={"bits": (2, 32)}), torch.device("cpu"))
    settings = bench.BenchSettings(reps=1, warmup=0, scaling_sizes=(40,), scaling_bits_samples=0, scaling_reps=2,
                                   try_compile=True)
    table = pd.DataFrame(bench.measure_compiled_epochs(work, settings)).set_index("metric")
    epochs = table.loc["epoch_time"]
    assert epochs.compiled.tolist() == [False, True]
    assert epochs[["samples", "bits", "model", "width", "input", "batch", "threads", "memory_format"]].drop_duplicates(
        ).values.tolist() == [[40, "32,2", "resnet8", 0.5, "1x16x16", 32, 1, "channels_last"]]
    first = table.loc["first_compiled_epoch", "value"]
    assert first > epochs.value.iloc[1] > 0  # the first compiled epoch pays the compilation
    ratio = table.loc["compiled_epoch_over_eager", "value"]
    assert ratio == pytest.approx(epochs.value.iloc[1] / epochs.value.iloc[0])
    assert table.loc["compile_break_even_epochs", "value"] == pytest.approx(
        bench.break_even_epochs(first, *epochs.value))
    assert bench.measure_compiled_epochs(work, dataclasses.replace(settings, try_compile=False)) == []


@pytest.mark.slow
def test_compiled_steps_are_timed_beside_the_eager_ones():
    work = timing.Workload(bench.profile_config("smoke", method="emq", model={"bits": (2, 32)}), torch.device("cpu"))
    settings = bench.BenchSettings(reps=2, warmup=1, scaling_sizes=(), scaling_bits_samples=0, scaling_reps=0,
                                   try_compile=True, matmul_n=64)
    table = pd.DataFrame(bench.measure_steps(work, settings))
    steps = [("plain", 32, None), ("emq", 32, None), ("emq", 2, True), ("emq", 2, False)]
    compiled = table[table.metric == "compile_seconds"]
    assert len(compiled) == len(steps) and (compiled.value > 0).all()  # one graph (and its compile time) per step
    for metric, count in [("compiled_over_eager", 4), ("quant_step_ratio_compiled", 3), ("step_time", 8)]:
        values = table[table.metric == metric].value
        assert len(values) == count and values.map(math.isfinite).all() and (values > 0).all(), metric
    ratios = table[table.metric == "compiled_over_eager"]
    assert [(m, int(b), None if pd.isna(c) else c) for m, b, c in zip(ratios.method, ratios.bits,
                                                                      ratios.bias_correction)] == steps
    assert ratios.compiled.all()
    times = table[table.metric == "step_time"]
    assert sorted(times.compiled.tolist()) == [False] * 4 + [True] * 4


def test_a_fact_without_a_column_is_an_error_not_dropped():
    with pytest.raises(ValueError, match="facts without a column: \\['colour'\\]"):
        timing.table([timing.row("step_time", 1.0, "ms", "a step", colour="red")], bench.COLUMNS)


def test_the_figure_is_drawn_from_the_committed_table(tmp_path):
    from emqlib.harness import paths

    plots.plot_bench(paths.ROOT / "results" / "bench.csv", tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
