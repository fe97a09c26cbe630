"""The validation split that settings are chosen on: held out of the training data, never the test set."""
from __future__ import annotations

import torch

from emqlib.data import holdout_validation, synthetic_dataset


def test_holdout_validation_is_class_balanced_disjoint_and_fixed():
    train = synthetic_dataset(train=True)  # 4 classes x 48
    rest, validation = holdout_validation(train, 10)
    assert torch.bincount(validation.targets).tolist() == [10] * 4
    assert torch.bincount(rest.targets).tolist() == [38] * 4
    # every training image lands in exactly one of the two (images are distinct, so compare them)
    as_rows = lambda d: {tuple(x.flatten().tolist()) for x in d.images}  # noqa: E731
    assert as_rows(rest) | as_rows(validation) == as_rows(train) and not as_rows(rest) & as_rows(validation)
    again_rest, again_validation = holdout_validation(train, 10)
    assert torch.equal(again_validation.images, validation.images) and torch.equal(again_rest.images, rest.images)
    # labels travel with their images
    assert torch.equal(validation.clean_targets, validation.targets)
