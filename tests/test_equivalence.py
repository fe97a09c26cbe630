"""Smoke-profile runs give exactly the metrics recorded before the training core was refactored
(issue 16): one run of each method and training loop, trained here and compared to the
expected numbers with ``==``. The numbers were computed on the development machine (CPU,
one thread, torch as pinned); on other hardware floating-point order can differ, so a
mismatch elsewhere is only meaningful if it also appears on that machine before a change.
To refresh after an intended change of results: ``python tests/test_equivalence.py``. Intended
changes so far: ``acs`` after acs_beta moved to u = t/E and the teacher's scoring forward was
counted once per selection instead of once per bit-width (issue 11)."""
from __future__ import annotations

from pathlib import Path

import pytest

from emqlib.config import profile_config
from emqlib.runs import get_run
from emqlib.train import Runtime

# one representative run per method and training loop
CASES = {
    "dedicated": dict(method="dedicated", bits=(2, 32)),
    "joint": dict(method="joint", bits=(2, 4, 32)),
    "emq": dict(method="emq", bits=(2, 4, 32)),
    "emq+coreset-sequential": dict(method="emq", bits=(2, 32), coreset="emq-topk", fraction=0.5),
    "emq+coreset-batch": dict(method="emq", bits=(2, 4, 32), coreset="emq-topk", fraction=0.5, coreset_training="batch"),
    "acs": dict(method="emq", bits=(2, 32), coreset="acs", fraction=0.5),
}


def final_numbers(root: Path, overrides: dict) -> dict:
    """Per bit-width: last-epoch test accuracy, and every epoch's train loss and pass counts."""
    run = get_run(profile_config("smoke", **overrides), Runtime(progress=False), root=root)
    m = run.metrics.sort_values(["bits", "epoch"])
    return {int(b): {"test_accuracy": float(g.test_accuracy.iloc[-1]), "train_loss": [float(v) for v in g.train_loss],
                     "passes": [int(v) for v in g.sample_passes + g.teacher_forwards + g.selection_forwards]}
            for b, g in m.groupby("bits")}


EXPECTED = {'dedicated': {2: {'test_accuracy': 64.58333134651184,
                   'train_loss': [1.0534384846687317, 0.870416541894277],
                   'passes': [192, 192]},
               32: {'test_accuracy': 56.25,
                    'train_loss': [1.274660547574361, 1.0722553730010986],
                    'passes': [192, 192]}},
 'joint': {2: {'test_accuracy': 63.54166865348816,
               'train_loss': [1.3580973943074544, 1.3361283143361409],
               'passes': [192, 192]},
           4: {'test_accuracy': 63.54166865348816,
               'train_loss': [1.3573789795239766, 1.323381284872691],
               'passes': [192, 192]},
           32: {'test_accuracy': 63.54166865348816,
                'train_loss': [1.2746645013491313, 1.0721173981825511],
                'passes': [192, 192]}},
 'emq': {2: {'test_accuracy': 64.58333134651184,
             'train_loss': [1.3584457238515217, 1.3366326888402302],
             'passes': [192, 192]},
         4: {'test_accuracy': 65.625, 'train_loss': [1.35766996939977, 1.3358370463053386], 'passes': [192, 192]},
         32: {'test_accuracy': 67.70833134651184,
              'train_loss': [1.3038766781489055, 1.1413727800051372],
              'passes': [192, 192]}},
 'emq+coreset-sequential': {2: {'test_accuracy': 65.625,
                                'train_loss': [2.597999413808187, 2.57049560546875],
                                'passes': [192, 384]},
                            32: {'test_accuracy': 65.625,
                                 'train_loss': [1.391875147819519, 1.2768319845199585],
                                 'passes': [96, 288]}},
 'emq+coreset-batch': {2: {'test_accuracy': 64.58333134651184,
                           'train_loss': [1.3580786436796188, 1.3415566831827164],
                           'passes': [96, 288]},
                       4: {'test_accuracy': 65.625,
                           'train_loss': [1.3326699001093705, 1.3445200485487778],
                           'passes': [96, 288]},
                       32: {'test_accuracy': 64.58333134651184,
                            'train_loss': [1.3619630051155884, 1.2733321810762088],
                            'passes': [96, 288]}},
 'acs': {2: {'test_accuracy': 61.45833134651184,
             'train_loss': [2.727668285369873, 2.525068680445353],
             'passes': [384, 384]},
         32: {'test_accuracy': 61.45833134651184,
              'train_loss': [2.8700220584869385, 2.5752907594045005],
              'passes': [576, 384]}}}


@pytest.mark.parametrize("name", list(CASES))
def test_smoke_metrics_equal_the_recorded_ones(name: str, tmp_path_factory) -> None:
    root = tmp_path_factory.getbasetemp() / "equivalence-runs"  # shared: acs reuses one reference run
    assert final_numbers(root, CASES[name]) == EXPECTED[name]


if __name__ == "__main__":  # print the current numbers, to paste above after an intended change
    import pprint
    import tempfile

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        pprint.pprint({name: final_numbers(Path(tmp), overrides) for name, overrides in CASES.items()},
                      width=120, sort_dicts=False)
