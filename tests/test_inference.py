"""Forward passes without training: the batch size changes the time of an evaluation, never its logits."""
from __future__ import annotations

import pytest
import torch

from emqlib.harness.build import model_for
from emqlib.harness.config import profile_config
from emqlib.harness.datasets import synthetic_dataset
from emqlib.inference import PREDICT_BATCH, accuracy, predict


@pytest.mark.parametrize("bits", [2, 5, 32])
def test_logits_and_features_do_not_depend_on_the_batch_size(bits):
    # evaluations cached in run folders were computed in batches of 1,000: the default batch may
    # change only because in eval mode each sample's logits are computed alone, to the last bit
    torch.manual_seed(0)
    model = model_for(profile_config("smoke", "emq")).eval()
    data = synthetic_dataset(train=False, per_class=100)  # 400 samples: one batch of 1,000, two of 256
    expected, expected_features = predict(model, data, bits, batch_size=1000, features=True)
    for batch_size in (PREDICT_BATCH, 128, 7):
        logits, features = predict(model, data, bits, batch_size=batch_size, features=True)
        assert torch.equal(logits, expected), batch_size
        assert torch.equal(features, expected_features), batch_size


def test_accuracy_counts_the_argmax_hits_of_predict():
    torch.manual_seed(1)
    model = model_for(profile_config("smoke", "emq")).eval()
    data = synthetic_dataset(train=False)
    logits = predict(model, data, 4)
    hits = (logits.argmax(1) == data.targets).float().mean().item()
    assert accuracy(model, data, 4)["accuracy"] == pytest.approx(100 * hits)
