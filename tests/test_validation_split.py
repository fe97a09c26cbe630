"""The validation split that settings are chosen on: held out of the training data, never the test set."""
from __future__ import annotations

import pytest
import torch

from emqlib.harness.build import Runtime, load_run_data
from emqlib.harness.config import profile_config
from emqlib.harness.datasets import holdout_validation, synthetic_dataset
from emqlib.harness.runs import get_run


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


def test_a_run_is_one_model_evaluated_on_the_test_set_and_on_held_out_training_samples():
    config = profile_config("smoke", data={"validation_per_class": 10, "train_per_class": 20, "label_noise": 0.25})
    train, test = load_run_data(config)
    same_train, evaluated = load_run_data(config, "validation")
    assert torch.equal(train.images, same_train.images) and torch.equal(train.targets, same_train.targets)
    assert torch.equal(test.images, synthetic_dataset(train=False).images)
    rest, validation = holdout_validation(synthetic_dataset(train=True), 10)
    assert torch.equal(evaluated.images, validation.images) and torch.equal(evaluated.targets, validation.targets)
    # the training subset and its label noise are drawn from the rest, never from the held-out samples
    as_rows = lambda d: {tuple(x.flatten().tolist()) for x in d.images}  # noqa: E731
    assert as_rows(train) <= as_rows(rest) and torch.bincount(train.clean_targets).tolist() == [20] * 4
    assert int(train.flipped.sum()) == 20 and not evaluated.flipped.any()
    # the same held-out samples for every run seed
    assert torch.equal(load_run_data(config.replace(seed=1), "validation")[1].images, evaluated.images)
    with pytest.raises(ValueError, match="holds out no validation samples"):
        load_run_data(config.replace(data={"validation_per_class": None}, record={"validate": False}), "validation")
    with pytest.raises(ValueError, match="set data.validation_per_class, or record.validate=false"):
        config.replace(data={"validation_per_class": None})  # a run that would measure a split it does not have
    with pytest.raises(ValueError, match="split must be one of"):
        load_run_data(config, "train")


def test_a_validating_run_records_both_accuracies_of_the_same_model(tmp_path):
    config = profile_config("smoke", record={"validate": True})
    run = get_run(config, Runtime(progress=False), root=tmp_path)
    final = run.final_metrics()
    assert final.val_accuracy.notna().all() and final.test_accuracy.notna().all()
    evaluated = run.evaluate(config.model.bits, split="validation").set_index("bits").accuracy
    for b, accuracy in zip(final.bits, final.val_accuracy):
        assert evaluated[b] == pytest.approx(accuracy, abs=1e-9)


def test_the_cpu_profile_validates_where_choices_are_made_only():
    # the full schedule (the pruning and cost claims, where samplers and served bit-widths are chosen) measures both
    # splits; the short one measures the test set only, from the same held-out images
    full, short = profile_config("cpu"), profile_config("cpu", short=True)
    assert full.record.validate and not short.record.validate
    assert short.data == full.data
