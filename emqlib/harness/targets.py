"""The project's targets, in one table: what the benchmark, the claims' targets block and the report
grade against, with the words of each verdict. Nothing else states a target's number."""
from __future__ import annotations

from dataclasses import dataclass

NON_INFERIORITY = 0.5  # points: "at least as good as" holds when A - B > -0.5 (a margin inside seed noise)


@dataclass(frozen=True)
class Target:
    """Met when a value lies ``direction`` ("above" or "below") ``threshold``; ``metric``: the results/bench.csv
    metric it grades, where the benchmark measures it too."""
    name: str
    text: str
    direction: str
    threshold: float
    unit: str = ""
    metric: str | None = None

    @property
    def shown(self) -> str:
        return f"{'>' if self.direction == 'above' else '<'} {self.threshold:g}{self.unit}"

    def met(self, value: float) -> bool:
        return value > self.threshold if self.direction == "above" else value < self.threshold


TARGETS = {t.name: t for t in [
    # of the bit-wise coreset work at the cpu profile, per seed (measured by emqlib.harness.claims.TARGETS)
    Target("T1", "EMQ + bit-wise coreset (80% pruning) within 1.5 points of full-data EMQ", "above", -1.5, " points"),
    Target("T2", "EMQ + bit-wise coreset at least as good as random re-drawn every epoch (80% pruning)", "above",
           -NON_INFERIORITY, " points"),
    Target("T3", "EMQ + bit-wise coreset at least as good as equal-budget full data (80% pruning)", "above",
           -NON_INFERIORITY, " points"),
    Target("T4", "selection at most 10% of EMQ + bit-wise coreset's wall-clock", "below", 10.0, "%",
           metric="selection_share"),
    Target("T5", "speed-up over Dedicated on every served bit-width at least 8x", "above", 8.0, "x"),
    # of `make bench`
    Target("step", "a quantized training step at most 1.25x the plain full-precision step", "below", 1.25, "x",
           metric="quant_step_ratio"),
    Target("dedicated_gap", "each method's average accuracy within 1.5 points of Dedicated's (Dedicated minus it)",
           "below", 1.5, " points", metric="accuracy_gap"),
    # of the evidence the claims rest on (measured by `make reproduce`: claims.csv, convergence.csv, ranking.csv)
    Target("settled", "graded claims settled (reproduced or not reproduced, on at least 3 seeds)", "above", 80.0,
           "%"),
    Target("converged", "gain of each trained bit-width from twice the epochs (mean over seeds)", "below", 0.5,
           " points"),
    Target("ranking", "Spearman correlation of the pruned arms' validation and test ranks", "above", 0.8),
    # of a cold `make reproduce` (empty run cache) at the cpu profile
    Target("reproduce", "a cold `make reproduce` within 60 minutes", "below", 60.0, " minutes"),
    Target("reproduce_limit", "a cold `make reproduce` within 75 minutes at most", "below", 75.0, " minutes"),
]}
BY_METRIC = {t.metric: t for t in TARGETS.values() if t.metric}
# a per-seed target's verdict, by the claims' status of its per-seed values (emqlib.harness.grading.grade)
VERDICTS = {"reproduced": "met", "partial": "mean meets it, not every seed or not the whole interval",
            "not reproduced": "missed"}
