"""RunConfig: its parts and their validation, the cache hash, the methods' presets, profiles, the
reference run, dotted field paths, and the command line's answer to bad input."""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pickle
import subprocess
import sys
import textwrap
import typing

import numpy as np
import pytest

from emqlib.bn import BN_MODES
from emqlib.coreset.samplers import SAMPLERS, settings_for
from emqlib.distill import TEACHERS
from emqlib.harness.config import (BIT_ORDERS, BITWISE_TRAINING, DATASETS, LOOPS, LR_SCHEDULES, METHODS, MODEL_NAMES,
                                   OPTIMIZERS, PARTS, PROFILE_RESELECT, PROFILES, DataConfig, ModelConfig, OptimConfig,
                                   RecordConfig, RunConfig, TrainingConfig, config_hash, field_type, method_config,
                                   profile_config, reference_config, set_field, set_fields)
from emqlib.harness.paths import ROOT
from emqlib.quant import CORRECTION_MODES, FULL_PRECISION_ACTIVATIONS, FULL_PRECISION_WEIGHTS, WEIGHT_QUANTIZERS, QuantSpec

# the base for "change one field": EMQ on bit-wise coresets, trained on the labels alone (no teacher) and with
# plain full-precision weights and a validation split (which record.validate measures), so that every field (the loop, the teacher, the quantizer, each selection
# setting) can change alone
BASE = method_config("emq", model={"quant": {"full_precision_weight": "plain"}}, data={"validation_per_class": 20},
                     training={"loop": "sequential", "teacher": "none", "label_weight": 1.0},
                     selection={"rule": "emq-ccs", "fraction": 0.5})
# for every field outside the selection rule's settings, a different value that is valid when only it changes
CHANGES = {
    "method": "joint",
    "seed": 1,
    "data.dataset": "cifar10",
    "data.train_per_class": 100,
    "data.test_per_class": 50,
    "data.validation_per_class": 30,
    "data.label_noise": 0.1,
    "data.augment": True,
    "model.name": "resnet20",
    "model.width": 0.5,
    "model.bits": (32, 4),
    "model.activation_bits": 8,
    "model.bn_mode": "switchable",
    "model.quant.weight_quantizer": "lsq",
    "model.quant.bias_correction": False,
    "model.quant.correction_mode": "paper",
    "model.quant.per_channel": False,
    "model.quant.detach_stats": False,
    "model.quant.full_precision_weight": "tanh",
    "model.quant.full_precision_activation": "relu",
    "selection.rule": "random",
    "training.loop": "batch",
    "training.teacher": "fp-child",
    "training.label_weight": 0.5,
    "training.bit_order": "ascending",
    "training.reference_epochs": 4,
    "training.init_from_reference": True,
    "optim.epochs": 7,
    "optim.batch_size": 64,
    "optim.optimizer": "sgd",
    "optim.lr": 0.01,
    "optim.weight_decay": 5e-4,
    "optim.momentum": 0.8,
    "optim.lr_schedule": "multistep",
    "optim.milestones": (2, 4),
    "record.eval_every": 2,
    "record.snapshot_every": 2,
    "record.record_trajectory": True,
    "record.validate": True,
}
# each rule's settings start from this (fraction 0.5 where none is given) and change by these values
RULE_BASES = {"none": {}, "infobatch": {}, "replay": {"source_run": "fedcba9876543210"}}
SETTING_CHANGES = {"fraction": 0.3, "reselect_every": 3, "warmup_epochs": 3, "static": True, "free_scores": True,
                   "score": "grand", "tau": 2.0, "uniform_share": 0.5, "hard_share": 0.2, "strata": 10, "window": 5,
                   "schedule": "linear", "class_balanced": False, "reshuffle": False, "prune_prob": 0.3, "anneal": 0.5,
                   "source_run": "0123456789abcdef"}
# settings that a rule keeps fixed, with the refusal when one changes alone
FIXED_SETTINGS = {("none", "fraction"): "needs a selection rule", ("infobatch", "fraction"): "leave fraction at 1.0",
                  ("tdds-rescored", "free_scores"): "leave free_scores and score",
                  ("tdds-rescored", "score"): "leave free_scores and score"}


def value_at(config, path: str):
    return functools.reduce(getattr, path.split("."), config)


def leaf_paths(cls, prefix: str = "") -> set[str]:
    """Every field under ``cls`` as a dotted path (quant.bits left out: it mirrors model.bits)."""
    paths = set()
    for name, hint in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            paths |= leaf_paths(hint, f"{prefix}{name}.")
        elif f"{prefix}{name}" != "model.quant.bits":
            paths.add(f"{prefix}{name}")
    return paths


def rule_base(rule: str) -> RunConfig:
    return BASE.replace(selection={"rule": rule, **RULE_BASES.get(rule, {"fraction": 0.5})})


SETTING_CASES = sorted((rule, f.name) for rule, sampler in SAMPLERS.items()
                       for f in dataclasses.fields(sampler.Settings) if f.name != "rule")


def test_defaults_validate():
    config = RunConfig()
    assert config.method == "emq" and config.model.bits == (32, 8, 4, 2)
    assert config.selection == settings_for("none") and config.selection.fraction == 1.0
    assert config == method_config("emq")
    assert len(config_hash(config)) == 16 and set(config_hash(config)) <= set("0123456789abcdef")


def test_every_field_has_a_change_under_test():
    assert set(CHANGES) == leaf_paths(RunConfig) - {"selection.fraction"}  # the rules' settings: below
    assert set(SETTING_CHANGES) == {name for _, name in SETTING_CASES}


@pytest.mark.parametrize("path", sorted(CHANGES))
def test_changing_any_field_changes_the_hash(path):
    changed = set_field(BASE, path, CHANGES[path])
    assert value_at(changed, path) == CHANGES[path] != value_at(BASE, path)
    assert config_hash(changed) != config_hash(BASE)
    assert config_hash(changed) == config_hash(set_field(BASE, path, CHANGES[path]))


@pytest.mark.parametrize("rule, name", [case for case in SETTING_CASES if case not in FIXED_SETTINGS])
def test_changing_any_selection_setting_changes_the_hash(rule, name):
    base = rule_base(rule)
    changed = set_field(base, f"selection.{name}", SETTING_CHANGES[name])
    assert getattr(changed.selection, name) == SETTING_CHANGES[name] != getattr(base.selection, name)
    assert changed.selection.rule == rule and config_hash(changed) != config_hash(base)


@pytest.mark.parametrize("rule, name", sorted(FIXED_SETTINGS))
def test_settings_a_rule_keeps_fixed_are_refused(rule, name):
    with pytest.raises(ValueError, match=FIXED_SETTINGS[rule, name]):
        set_field(rule_base(rule), f"selection.{name}", SETTING_CHANGES[name])


def test_all_single_changes_give_distinct_hashes():
    hashes = {config_hash(BASE)} | {config_hash(set_field(BASE, p, v)) for p, v in CHANGES.items()}
    assert len(hashes) == len(CHANGES) + 1


def test_equal_configs_have_equal_hashes():
    # values that compare equal give the same cache key, whatever their Python type or spelling
    default = config_hash(RunConfig())
    assert config_hash(RunConfig().replace(model={"width": 1})) == default
    assert config_hash(RunConfig().replace(optim={"lr": 1, "weight_decay": 0})) == \
        config_hash(RunConfig().replace(optim={"lr": 1.0, "weight_decay": 0.0}))
    assert config_hash(RunConfig().replace(optim={"epochs": np.int64(5)}, seed=np.int64(0))) == default
    assert config_hash(RunConfig().replace(data={"label_noise": 0})) == default
    assert config_hash(RunConfig().replace(model={"bits": [2, 4, 8, 32]})) == \
        config_hash(RunConfig().replace(model={"bits": "32,8,4,2"})) == default
    assert config_hash(RunConfig().replace(model={"quant": QuantSpec(bias_correction=True,
                                                                      full_precision_activation="clamp")})) == default
    assert config_hash(RunConfig().replace(optim={"milestones": [2, 4]})) == \
        config_hash(RunConfig().replace(optim=OptimConfig(milestones=(2, 4))))
    assert config_hash(BASE.replace(selection={"fraction": 1 / 2})) == config_hash(BASE)


def test_hash_is_stable_across_processes():
    configs = {"default": RunConfig(), "changed": rule_base("emq-sample").replace(model={"bits": (1, 2, 32)},
                                                                                 optim={"milestones": (1, 3)})}
    code = textwrap.dedent("""
        import json, sys
        from emqlib.harness.config import RunConfig, config_hash
        values = json.loads(sys.argv[1])
        print(json.dumps({k: config_hash(RunConfig.from_dict(v)) for k, v in values.items()}))
    """)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    payload = json.dumps({k: c.to_dict() for k, c in configs.items()})
    result = subprocess.run([sys.executable, "-c", code, payload], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {k: config_hash(c) for k, c in configs.items()}


def test_to_dict_from_dict_round_trip():
    config = rule_base("emq-sample").replace(model={"bits": (1, 2, 32), "quant": {"weight_quantizer": "lsq"}},
                                             optim={"milestones": (3, 5)}, data={"train_per_class": 7})
    values = json.loads(json.dumps(config.to_dict()))  # as stored in a run's config.json
    again = RunConfig.from_dict(values)
    assert again == config and config_hash(again) == config_hash(config)
    assert isinstance(again.model.bits, tuple) and isinstance(again.optim.milestones, tuple)
    assert type(again.selection) is type(config.selection) and again.selection.tau == config.selection.tau
    assert set(values) == {"method", "seed", *PARTS}
    assert "bits" not in values["model"]["quant"] and again.model.quant.bits == (32, 2, 1)  # mirrors model.bits


# configurations whose hashes name runs in the cache (computed at schema 5, the exact-mean correction the default):
# a change here orphans every cached run of that kind, so it must come with a SCHEMA_VERSION bump
def _acs_config():
    return profile_config("cpu", method="dedicated", model={"bits": (2,), "activation_bits": 32,
                                                            "quant": QuantSpec(weight_quantizer="lsq",
                                                                               full_precision_weight="plain")},
                          training={"init_from_reference": True, "teacher": "reference", "label_weight": 0.0},
                          selection={"rule": "acs", "fraction": 0.1})


PINNED_HASHES = {
    "05d49a08e53c8fb2": lambda: RunConfig(),
    "92788445d442ef9b": lambda: profile_config("cpu", training=BITWISE_TRAINING,
                                selection={"rule": "emq-sample", "fraction": 0.3, "tau": 2.0, "free_scores": True}),
    "e9be6283c60ea99a": lambda: reference_config(_acs_config()),
}


@pytest.mark.parametrize("expected", sorted(PINNED_HASHES))
def test_cached_configurations_keep_their_hashes(expected):
    config = PINNED_HASHES[expected]()
    assert config_hash(config) == expected
    assert config_hash(RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))) == expected


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown configuration fields \['nosuch_field'\]; the parts are \["):
        RunConfig.from_dict({**RunConfig().to_dict(), "nosuch_field": 1})
    with pytest.raises(ValueError, match=r"optim has no fields \['nosuch'\]; its fields: \['batch_size'"):
        RunConfig.from_dict({**RunConfig().to_dict(), "optim": {"nosuch": 1}})


def test_bits_are_sorted_descending_without_duplicates():
    assert ModelConfig(bits=(2, 32, 4, 2)).bits == (32, 4, 2)
    assert ModelConfig(bits="1-3,32").bits == (32, 3, 2, 1)
    assert ModelConfig(bits=[4, 2]).quant.bits == (4, 2)  # LSQ keeps a step per trained bit-width


# ---------------------------------------------------------------- the methods

@pytest.mark.parametrize("method, bn_mode, correction, activation, loop, teacher, label_weight", [
    ("emq", "shared", True, "clamp", "joint", "recursive", 0.0),
    ("joint", "switchable", False, "relu", "joint", "recursive", 0.0),
    ("dedicated", "switchable", False, "relu", "sequential", "none", 1.0),
])
def test_methods_set_their_documented_options(method, bn_mode, correction, activation, loop, teacher, label_weight):
    config = method_config(method)
    assert config.method == method
    assert (config.model.bn_mode, config.model.quant.bias_correction, config.model.quant.full_precision_activation) == \
        (bn_mode, correction, activation)
    assert (config.training.loop, config.training.teacher, config.training.label_weight) == (loop, teacher, label_weight)
    # every other field keeps its default
    defaults = RunConfig()
    assert (config.data, config.optim, config.record, config.selection, config.seed) == \
        (defaults.data, defaults.optim, defaults.record, defaults.selection, defaults.seed)
    assert config.model.quant.weight_quantizer == "dorefa" and config.model.quant.full_precision_weight == "tanh"


def test_changes_given_to_a_method_override_its_presets():
    config = method_config("joint", model={"bn_mode": "shared"})
    assert config.model.bn_mode == "shared" and config.model.quant.bias_correction is False


def test_bitwise_training_is_emqs_coreset_loop():
    assert BITWISE_TRAINING == dict(loop="sequential", teacher="fp-child", label_weight=1.0)
    config = method_config("emq", training=BITWISE_TRAINING, selection={"rule": "random", "fraction": 0.5})
    assert config.model.bn_mode == "shared" and config.training.loop == "sequential"


def test_needs_reference():
    assert not RunConfig().needs_reference and not rule_base("emq-topk").needs_reference
    assert rule_base("acs").needs_reference and rule_base("el2n").needs_reference
    assert set_field(RunConfig(), "training.init_from_reference", True).needs_reference
    assert method_config("dedicated", training={"teacher": "reference"}).needs_reference


def test_lsq_uses_plain_full_precision_weights():
    with pytest.raises(ValueError, match="full_precision_weight='plain' with weight_quantizer='lsq'"):
        RunConfig().replace(model={"quant": {"weight_quantizer": "lsq"}})
    config = _acs_config()
    assert config.model.quant.full_precision_weight == "plain" and config.model.quant.bits == (2,)
    # the reference run's 32-bit path is the one the LSQ model is distilled from and started from
    assert reference_config(config).model.quant.full_precision_weight == "plain"


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("path, allowed", [
    ("method", METHODS), ("data.dataset", DATASETS), ("model.name", MODEL_NAMES), ("model.bn_mode", BN_MODES),
    ("model.quant.weight_quantizer", WEIGHT_QUANTIZERS), ("model.quant.correction_mode", CORRECTION_MODES),
    ("model.quant.full_precision_weight", FULL_PRECISION_WEIGHTS),
    ("model.quant.full_precision_activation", FULL_PRECISION_ACTIVATIONS), ("selection.rule", SAMPLERS),
    ("training.loop", LOOPS), ("training.teacher", TEACHERS), ("training.bit_order", BIT_ORDERS),
    ("optim.optimizer", OPTIMIZERS), ("optim.lr_schedule", LR_SCHEDULES),
])
def test_unknown_names_list_the_allowed_values(path, allowed):
    with pytest.raises(ValueError) as info:
        set_field(RunConfig(), path, "nosuch")
    message = str(info.value)
    assert "'nosuch'" in message and "\n" not in message
    for value in allowed:
        assert repr(value) in message


@pytest.mark.parametrize("bits", [0, -1, 9, 16, 31, 33, "two", [], 2.5, (0,), (-1,), (9,), (16,), (31,), (33,),
                                  (2.5,), ("two",), (True,), "9", "", None])
def test_bad_bits_are_rejected(bits):
    with pytest.raises(ValueError, match="bit") as info:
        RunConfig().replace(model={"bits": bits})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("activation_bits", [0, 9, 2.5, "4", True])
def test_bad_activation_bits_are_rejected(activation_bits):
    with pytest.raises(ValueError, match="bits must be an integer in 1..8 or 32"):
        ModelConfig(activation_bits=activation_bits)


@pytest.mark.parametrize("fraction", [0, 0.0, -0.5, 1.5, True, "0.5", math.nan])
def test_bad_fraction_is_rejected(fraction):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        BASE.replace(selection={"fraction": fraction})


def test_fraction_and_rule_must_agree():
    with pytest.raises(ValueError, match="selection rule 'none' trains on every sample; a fraction below 1 needs"):
        RunConfig().replace(selection={"fraction": 0.5})
    with pytest.raises(ValueError, match="rule 'emq-topk' at fraction 1.0 keeps every sample"):
        BASE.replace(selection={"rule": "emq-topk"})
    # random at 1.0: every sample, in the coreset runs' bit-wise loop (an equal-budget baseline)
    assert BASE.replace(selection={"rule": "random"}).selection.fraction == 1.0


@pytest.mark.parametrize("changes, message", [
    (dict(data={"label_noise": 1.0}), r"label noise rate must be in \[0, 1\)"),
    (dict(data={"label_noise": -0.1}), "label noise rate"),
    (dict(data={"train_per_class": 0}), "train_per_class must be an integer >= 1"),
    (dict(data={"validation_per_class": 0}), "validation_per_class must be an integer >= 1"),
    (dict(data={"augment": 1}), "augment must be True or False"),
    (dict(model={"width": 0}), "width must be positive"),
    (dict(model={"width": "wide"}), "width must be a finite number"),
    (dict(model={"width": math.inf}), "width must be a finite number"),
    (dict(model={"quant": {"per_channel": "yes"}}), "per_channel must be True or False"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(seed=1.5), "seed must be an integer >= 0"),
    (dict(training={"reference_epochs": 0}), "reference_epochs must be an integer >= 1"),
    (dict(training={"label_weight": -1.0}), "label_weight must be >= 0"),
    (dict(training={"init_from_reference": "yes"}), "init_from_reference must be True or False"),
    (dict(optim={"epochs": 0}), "epochs must be an integer >= 1"),
    (dict(optim={"epochs": 2.0}), "epochs must be an integer >= 1"),
    (dict(optim={"epochs": True}), "epochs must be an integer >= 1"),
    (dict(optim={"batch_size": 0}), "batch_size must be an integer >= 1"),
    (dict(optim={"lr": 0.0}), "lr must be positive"),
    (dict(optim={"lr": -1e-3}), "lr must be positive"),
    (dict(optim={"lr": math.nan}), "lr must be a finite number"),
    (dict(optim={"momentum": 1.0}), r"momentum must be in \[0, 1\)"),
    (dict(optim={"weight_decay": -1e-4}), "weight_decay must be >= 0"),
    (dict(optim={"milestones": (3, 1)}), "milestones must be increasing epochs"),
    (dict(optim={"milestones": (2, 2)}), "milestones must be increasing epochs"),
    (dict(optim={"milestones": (0,)}), "milestones must be an integer >= 1"),
    (dict(record={"eval_every": 0}), "eval_every must be an integer >= 1"),
    (dict(record={"snapshot_every": -1}), "snapshot_every must be an integer >= 0"),
    (dict(record={"record_trajectory": 1}), "record_trajectory must be True or False"),
    (dict(selection={"reselect_every": 0}), "reselect_every must be an integer >= 1"),
    (dict(selection={"warmup_epochs": -1}), "warmup_epochs must be an integer >= 0"),
    (dict(selection={"strata": 0}), "strata must be an integer >= 1"),
    (dict(selection={"hard_share": 1.0}), r"hard_share must be in \[0, 1\)"),
    (dict(selection={"score": "nosuch"}), "score must be 'el2n' or 'grand'"),
    (dict(selection={"free_scores": True, "score": "grand"}), "set score='el2n' and warmup_epochs >= 1"),
    (dict(selection={"free_scores": True, "warmup_epochs": 0}), "set score='el2n' and warmup_epochs >= 1"),
    (dict(selection={"tau": 1.0}), r"selection rule 'emq-ccs' has no settings \['tau'\]; its settings: \['fraction'"),
    (dict(selection={"rule": "emq-sample", "fraction": 0.5, "tau": -1.0}), "tau must be >= 0"),
    (dict(selection={"rule": "emq-sample", "fraction": 0.5, "uniform_share": 1.5}), r"uniform_share in \[0, 1\]"),
    (dict(selection={"rule": "tdds-rescored", "fraction": 0.5, "warmup_epochs": 1}), "warmup_epochs >= 2"),
    (dict(selection={"rule": "tdds-rescored", "fraction": 0.5, "window": 2}), "window must be an integer >= 3"),
    (dict(selection={"rule": "acs", "fraction": 0.5, "schedule": "nosuch"}), "schedule must be one of"),
    (dict(selection={"rule": "random", "fraction": 0.5, "static": True}), r"'random' has no settings \['static'\]"),
    (dict(selection={"rule": "infobatch", "fraction": 0.5}), "leave fraction at 1.0"),
    (dict(selection={"rule": "infobatch", "prune_prob": 0.0}), r"prune_prob must be in \(0, 1\)"),
    (dict(selection={"rule": "infobatch", "anneal": 1.5}), r"anneal in \[0, 1\]"),
    (dict(selection={"rule": "replay", "source_run": "abc"}), "source_run must be a run's 16-character hash"),
])
def test_bad_values_are_rejected_with_one_line(changes, message):
    with pytest.raises(ValueError, match=message) as info:
        BASE.replace(**changes)
    assert "\n" not in str(info.value)


def test_parts_validate_on_their_own():
    with pytest.raises(ValueError, match="dataset must be one of"):
        DataConfig(dataset="nosuch")
    with pytest.raises(ValueError, match="bits must be an integer in 1..8 or 32"):
        ModelConfig(bits=(9,))
    with pytest.raises(ValueError, match="epochs"):
        OptimConfig(epochs=0)
    with pytest.raises(ValueError, match="eval_every"):
        RecordConfig(eval_every=0)
    with pytest.raises(ValueError, match="label_weight must be > 0"):
        TrainingConfig(teacher="none")
    with pytest.raises(ValueError, match="teacher 'recursive' needs every bit-width on each batch"):
        TrainingConfig(loop="sequential")
    with pytest.raises(ValueError, match="the batch loop distils recursively or not at all"):
        TrainingConfig(loop="batch", teacher="fp-child")
    with pytest.raises(ValueError, match="keeps every sample"):
        settings_for("acs")
    with pytest.raises(TypeError, match="make settings with settings_for"):
        SAMPLERS["emq-topk"].Settings(rule="random", fraction=0.5)
    with pytest.raises(TypeError, match="data must be a DataConfig"):
        RunConfig(data=OptimConfig())
    assert ModelConfig(quant={"bias_correction": True}).quant == QuantSpec(bias_correction=True, bits=(32, 8, 4, 2))


# each check of how the parts fit: a combination the loops cannot run, and the nearest one they can
LABELS_ONLY = {"loop": "sequential", "teacher": "none", "label_weight": 1.0}
FREE_SCORES = {"rule": "emq-topk", "fraction": 0.5, "free_scores": True}
PARTS_FIT = {
    "dedicated-joint": (dict(method="dedicated"), dict(method="dedicated", training=LABELS_ONLY),
                        "Dedicated trains each bit-width alone"),
    "dedicated-recursive": (dict(method="dedicated", training={"loop": "batch", "teacher": "recursive"}),
                            dict(method="dedicated", training=LABELS_ONLY), "Dedicated trains each bit-width alone"),
    "fp-child-without-32": (dict(model={"bits": (2, 4)}, training=BITWISE_TRAINING),
                            dict(model={"bits": (2, 4, 32)}, training=BITWISE_TRAINING),
                            "teacher 'fp-child' needs 32 among the bits"),
    "rule-in-joint-loop": (dict(selection={"rule": "random", "fraction": 0.5}),
                           dict(selection={"rule": "random", "fraction": 0.5}, training={"loop": "batch"}),
                           "selection rule 'random' gives each bit-width its own samples"),
    "fraction-without-rule": (dict(selection={"fraction": 0.5}),
                              dict(selection={"rule": "random", "fraction": 0.5}, training=BITWISE_TRAINING),
                              "a fraction below 1 needs a selection rule"),
    "infobatch-in-batch-loop": (dict(selection={"rule": "infobatch"}, training={"loop": "batch"}),
                                dict(selection={"rule": "infobatch"}, training=BITWISE_TRAINING),
                                "infobatch reads each sample's training loss in the bit-wise loop"),
    "free-scores-in-batch-loop": (dict(selection=FREE_SCORES, training={"loop": "batch"}),
                                  dict(selection=FREE_SCORES, training=BITWISE_TRAINING),
                                  "reads each sample's training loss in the bit-wise loop"),
}


@pytest.mark.parametrize("case", sorted(PARTS_FIT))
def test_parts_that_do_not_fit_are_one_error_line(case):
    bad, good, message = PARTS_FIT[case]
    with pytest.raises(ValueError, match=message) as info:
        RunConfig().replace(**bad)
    assert "\n" not in str(info.value)
    RunConfig().replace(**good)  # the nearest combination that fits passes the same check


# ---------------------------------------------------------------- replace

def test_replace_merges_dicts_into_parts():
    config = RunConfig().replace(optim={"epochs": 30}, model={"quant": {"per_channel": False}}, seed=1)
    assert config.optim == OptimConfig(epochs=30) and config.seed == 1
    assert config.model.quant == dataclasses.replace(RunConfig().model.quant, per_channel=False)
    assert config.replace(optim={"lr": 0.01}).optim == OptimConfig(epochs=30, lr=0.01)  # earlier changes stay
    assert config.replace(optim=OptimConfig(lr=0.01)).optim == OptimConfig(lr=0.01)  # a whole part replaces


def test_replace_of_the_selection_rule_starts_from_its_defaults():
    config = rule_base("emq-sample").replace(selection={"tau": 2.0, "reselect_every": 3})
    assert config.replace(selection={"fraction": 0.3}).selection.tau == 2.0  # the same rule: merged
    moved = config.replace(selection={"rule": "emq-topk", "fraction": 0.3})
    assert moved.selection == settings_for("emq-topk", fraction=0.3)


def test_replace_validates():
    with pytest.raises(ValueError, match="epochs"):
        RunConfig().replace(optim={"epochs": 0})
    with pytest.raises(ValueError, match=r"unknown configuration fields \['epochs'\]; the parts are \['data', "):
        RunConfig().replace(epochs=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().optim.lr = 0.1


# ---------------------------------------------------------------- profiles and the reference run

def _nested_items(changes: dict, prefix: str = ""):
    for name, value in changes.items():
        if isinstance(value, dict):
            yield from _nested_items(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profiles_build(profile):
    config = profile_config(profile)
    for path, value in _nested_items(PROFILES[profile]):
        assert value_at(config, path) == (tuple(sorted(value, reverse=True)) if path == "model.bits" else value)
    assert profile_config(profile, seed=3).seed == 3
    assert profile_config(profile, method="joint").model.bn_mode == "switchable"


def test_profile_choices():
    assert profile_config("smoke").data.dataset == "synthetic"
    cpu = profile_config("cpu")
    assert (cpu.data.dataset, cpu.data.train_per_class, cpu.optim.epochs) == ("fashion-mnist", 600, 15)
    assert profile_config("cpu", short=True).optim.epochs == 6
    assert profile_config("smoke", short=True) == profile_config("smoke")  # no short schedule: the full one
    paper = profile_config("paper")
    assert (paper.data.dataset, paper.model.name, paper.model.width, paper.model.bits) == \
        ("cifar10", "resnet20", 5.0, (32, 8, 4, 2, 1))
    assert (paper.optim.epochs, paper.optim.milestones, paper.data.augment) == (200, (100, 150, 180), True)


def test_profiles_give_a_selection_rule_their_reselection_interval():
    config = profile_config("cpu", training=BITWISE_TRAINING, selection={"rule": "emq-topk", "fraction": 0.3})
    assert config.selection.reselect_every == config.selection.warmup_epochs == PROFILE_RESELECT["cpu"] != 10
    given = profile_config("cpu", training=BITWISE_TRAINING,
                           selection={"rule": "emq-topk", "fraction": 0.3, "reselect_every": 5})
    assert (given.selection.reselect_every, given.selection.warmup_epochs) == (5, PROFILE_RESELECT["cpu"])
    assert profile_config("cpu", training=BITWISE_TRAINING,
                          selection={"rule": "random", "fraction": 0.3}).selection == settings_for("random", fraction=0.3)


def test_unknown_profile_lists_the_profiles():
    with pytest.raises(ValueError) as info:
        profile_config("nosuch")
    for name in ("smoke", "cpu", "paper"):
        assert name in str(info.value)


def test_reference_config_is_a_dedicated_full_precision_run():
    config = rule_base("acs").replace(data={"train_per_class": 20, "label_noise": 0.1}, seed=4,
                                      training={"reference_epochs": 2}, optim={"lr": 0.01, "batch_size": 64})
    reference = reference_config(config)
    assert reference.method == "dedicated" and reference.model.bits == (32,)
    assert reference.record.record_trajectory and reference.record.snapshot_every == 1
    assert reference.selection == settings_for("none")
    assert reference.optim.epochs == 2 and reference.record.eval_every == 2  # tested once, after its last epoch
    assert reference.optim.lr_schedule == "constant" and reference.optim.milestones == ()
    assert reference.data == config.data and reference.seed == 4
    for path in ("model.name", "model.width", "model.bn_mode", "optim.batch_size", "optim.lr",
                 "model.quant.full_precision_weight", "model.quant.full_precision_activation"):
        assert value_at(reference, path) == value_at(config, path)
    assert not reference.needs_reference


def test_reference_config_is_shared_by_coreset_variants():
    a = reference_config(rule_base("acs"))
    b = reference_config(rule_base("el2n").replace(optim={"epochs": 9}, model={"bits": (32, 2)}))
    c = reference_config(set_field(rule_base("emq-topk"), "selection.reselect_every", 2))
    assert config_hash(a) == config_hash(b) == config_hash(c)
    assert config_hash(a) != config_hash(reference_config(rule_base("acs").replace(seed=1)))


@pytest.mark.parametrize("path", sorted(p for p in CHANGES if p.startswith("data.")))
def test_the_reference_run_takes_every_data_field(path):
    config = set_field(rule_base("acs"), path, CHANGES[path])
    assert reference_config(config).data == config.data != BASE.data


def test_config_survives_pickling():
    """The worker pool sends configurations to spawned processes."""
    config = rule_base("emq-sample").replace(optim={"epochs": 3})
    again = pickle.loads(pickle.dumps(config))
    assert again == config and again.optim.epochs == 3 and config_hash(again) == config_hash(config)


# ---------------------------------------------------------------- dotted paths (the command line's --set)

def test_set_field_on_dotted_paths():
    config = RunConfig()
    assert set_field(config, "optim.lr", 0.002) == config.replace(optim={"lr": 0.002})
    assert set_field(config, "model.quant.bias_correction", False).model.quant.bias_correction is False
    assert set_field(config, "seed", 5).seed == 5
    assert set_field(BASE, "selection.fraction", 0.25).selection == settings_for("emq-ccs", fraction=0.25)


def test_set_fields_applies_changes_together():
    # the teacher alone is refused (with no teacher the label loss is the only loss), in whichever order
    together = {"training.teacher": "none", "training.label_weight": 1.0}
    for values in (together, dict(reversed(together.items()))):
        assert set_fields(RunConfig(), values).training == TrainingConfig(teacher="none", label_weight=1.0)
    with pytest.raises(ValueError, match="label_weight must be > 0"):
        set_field(RunConfig(), "training.teacher", "none")


@pytest.mark.parametrize("path, message", [
    ("nosuch", r"unknown configuration field 'nosuch': 'nosuch' is not one of \['data', 'method', 'model', 'optim'"),
    ("nosuch.epochs", r"unknown configuration field 'nosuch.epochs': 'nosuch' is not one of \['data', "),
    ("optim.nosuch", r"'nosuch' is not one of \['batch_size', 'epochs', 'lr', "),
    ("data.epochs", r"'epochs' is not one of \['augment', 'dataset', "),
    ("model.quant.nosuch", r"'nosuch' is not one of \['bias_correction', 'bits', "),
    ("selection.nosuch", r"'nosuch' is not one of \['anneal', 'class_balanced', 'fraction', "),
    ("seed.nosuch", "unknown configuration field 'seed.nosuch'"),
])
def test_an_unknown_path_lists_the_choices(path, message):
    with pytest.raises(ValueError, match=message):
        field_type(path)
    with pytest.raises(ValueError, match=message):
        set_field(RunConfig(), path, 1)


def test_field_type_of_dotted_paths():
    assert field_type("optim.lr") is float and field_type("seed") is int and field_type("method") is str
    assert field_type("data.train_per_class") == int | None
    assert field_type("model.bits") == tuple[int, ...] and field_type("optim.milestones") == tuple[int, ...]
    assert field_type("model.quant.bias_correction") is bool and field_type("model.quant") is QuantSpec
    assert field_type("selection.tau") is float and field_type("selection.static") is bool  # any rule's settings
    assert field_type("training") is TrainingConfig


# ---------------------------------------------------------------- command line: bad input

CLI_CASES = {
    "unknown-method": (["--method", "nosuch"], "method must be one of"),
    "bits-two": (["--bits", "two"], "bits"),
    "bits-9": (["--bits", "9"], "bits must be an integer in 1..8 or 32"),
    "fraction-0": (["--fraction", "0"], "fraction"),
    "fraction-without-coreset": (["--fraction", "0.5"], "needs a selection rule"),
    "fraction-1.5-with-coreset": (["--coreset", "random", "--fraction", "1.5"], "fraction"),
    "fraction-1-with-coreset": (["--coreset", "emq-topk"], "keeps every sample"),
    "unknown-rule": (["--coreset", "nosuch"], "unknown selection rule 'nosuch'"),
    "label-noise-1": (["--label-noise", "1.0"], "label noise"),
    "reselect-every-0": (["--coreset", "emq-topk", "--fraction", "0.5", "--reselect-every", "0"], "reselect_every"),
    "reselect-every-without-coreset": (["--reselect-every", "3"], "has no settings ['reselect_every']"),
    "static-random": (["--coreset", "random", "--fraction", "0.5", "--static"], "has no settings ['static']"),
    "profile-nosuch": (["--profile", "nosuch"], "profile"),
    "epochs-abc": (["--set", "optim.epochs=abc"], "optim.epochs must be a number"),
    "unknown-field": (["--set", "nosuch=1"], "nosuch"),
    "a-whole-part": (["--set", "optim=3"], "optim is a part of the configuration; set its fields"),
}


def _runs_dir_is_empty(path) -> bool:
    return not path.exists() or not any(path.iterdir())


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_input_is_one_error_line_and_writes_nothing(tmp_path, monkeypatch, cli, case):
    monkeypatch.setenv("EMQ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("EMQ_DOWNLOAD", raising=False)
    argv = CLI_CASES[case][0]
    code, out, err = cli(["train", *([] if "--profile" in argv else ["--profile", "smoke"]), *argv])
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert CLI_CASES[case][1] in lines[0]
    assert out == ""
    assert _runs_dir_is_empty(tmp_path / "runs")


def test_cli_bad_input_in_a_fresh_process(tmp_path):
    """The real entry point, `python -m emqlib`: exit status 2 and one line, with no warning printed on import."""
    env = {k: v for k, v in os.environ.items() if k != "EMQ_DOWNLOAD"}
    result = subprocess.run([sys.executable, "-m", "emqlib", "train", "--profile", "smoke", "--bits", "two"], cwd=ROOT,
                            env={**env, "EMQ_RUNS_DIR": str(tmp_path / "runs")}, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith("error: bits")
    assert result.stdout == ""
    assert _runs_dir_is_empty(tmp_path / "runs")
