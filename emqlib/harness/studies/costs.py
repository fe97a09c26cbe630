"""Notebook 09: the training time of the runs behind each results CSV."""
from __future__ import annotations

import pandas as pd

from .. import paths
from ..config import reference_config
from ..results import PRODUCERS
from ..runs import load_run, run_path


def study_costs() -> pd.DataFrame:
    """Training time of the runs behind each results CSV (notebook order): each run named in a CSV's ``run``
    column, and the full-precision reference run it used, counted once, for the first CSV that names it (a run
    shared by two studies is paid by the first). Runs no CSV names (04's single-bit Dedicated runs on the
    served bit-widths) are not in it; the notebooks' wall-clock has them."""
    rows, counted = [], set()
    for name, notebook in PRODUCERS.items():
        path = paths.results_dir() / name
        if not path.exists() or "run" not in (frame := pd.read_csv(path)).columns:
            continue
        seconds, count, schedules = 0.0, 0, set()
        for name_ in frame.run.dropna().astype(str).unique():
            r = load_run(name_)
            schedules.add(r.config.optim.epochs)
            used = [r, *([load_run(run_path(reference_config(r.config)))] if r.config.needs_reference else [])]
            for part in (u for u in used if u.path.name not in counted):
                counted.add(part.path.name)
                seconds += part.cost()["wall_seconds"]
                count += 1
        rows.append({"result": name, "notebook": notebook, "new_runs": count, "train_minutes": seconds / 60,
                     "epochs": "/".join(map(str, sorted(schedules)))})
    return pd.DataFrame(rows)
