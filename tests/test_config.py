"""RunConfig: validation, the cache hash, derived options, profiles, the reference run, and
the command line's answer to bad input."""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from emqlib.harness.config import (ADDED_FIELDS, CORESETS, DATASETS, FIELD_PARTS, METHODS, MODEL_NAMES, PARTS,
                           PROFILES, CoresetConfig, DataConfig, OptimConfig, RunConfig, config_hash, field_name,
                           profile_config, reference_config)
from emqlib.quant import QuantSpec
from emqlib.harness.paths import ROOT

# the base for "change one field": a coreset run, so that coreset fields can change alone
BASE = dict(coreset="emq-topk", fraction=0.5)
# for every field, a different value that is valid when only that field changes from BASE
CHANGES = {
    "dataset": "cifar10",
    "train_per_class": 100,
    "test_per_class": 50,
    "validation_per_class": 30,
    "label_noise": 0.1,
    "augment": True,
    "model": "resnet20",
    "width": 0.5,
    "method": "joint",
    "bits": (32, 4),
    "activation_bits": 8,
    "weight_quantizer": "lsq",
    "bn_mode": "switchable",
    "bias_correction": False,
    "correction_mode": "exact",
    "per_channel": False,
    "detach_stats": False,
    "full_precision_weight": "plain",
    "full_precision_activation": "relu",
    "coreset": "emq-sample",
    "fraction": 0.3,
    "reselect_every": 3,
    "static": True,
    "warmup_epochs": 3,
    "free_scores": True,
    "sample_tau": 2.0,
    "sample_uniform_share": 0.5,
    "ccs_hard_share": 0.2,
    "ccs_strata": 10,
    "infobatch_prune_prob": 0.3,
    "infobatch_anneal": 0.5,
    "coreset_training": "batch",
    "emq_score": "grand",
    "acs_schedule": "linear",
    "bit_order": "ascending",
    "replay_from": "0123456789abcdef",
    "distillation": "none",
    "label_loss_weight": 0.5,
    "reference_epochs": 4,
    "init_from_reference": True,
    "epochs": 7,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.01,
    "weight_decay": 5e-4,
    "momentum": 0.8,
    "lr_schedule": "multistep",
    "milestones": (2, 4),
    "seed": 1,
    "eval_every": 2,
    "snapshot_every": 2,
    "record_trajectory": True,
}


def test_defaults_validate():
    config = RunConfig()
    assert config.method == "emq" and config.bits == (32, 8, 4, 2)
    assert config.coreset == "none" and config.fraction == 1.0
    assert config_hash(config) == config_hash(RunConfig())
    assert len(config_hash(config)) == 16 and set(config_hash(config)) <= set("0123456789abcdef")


def test_every_field_has_a_change_under_test():
    assert set(CHANGES) == set(FIELD_PARTS)


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_changing_any_field_changes_the_hash(name):
    base = RunConfig(**BASE)
    changed = base.replace(**{name: CHANGES[name]})
    assert getattr(changed, name) == CHANGES[name] != getattr(base, name)
    assert config_hash(changed) != config_hash(base)
    assert config_hash(changed) == config_hash(base.replace(**{name: CHANGES[name]}))


def test_all_single_changes_give_distinct_hashes():
    base = RunConfig(**BASE)
    hashes = {config_hash(base)} | {config_hash(base.replace(**{k: v})) for k, v in CHANGES.items()}
    assert len(hashes) == len(CHANGES) + 1


def test_equal_configs_have_equal_hashes():
    # values that compare equal give the same cache key, whatever their Python type
    assert config_hash(RunConfig(width=1)) == config_hash(RunConfig(width=1.0))
    assert config_hash(RunConfig(lr=1, weight_decay=0)) == config_hash(RunConfig(lr=1.0, weight_decay=0.0))
    assert config_hash(RunConfig(epochs=np.int64(5), seed=np.int64(0))) == config_hash(RunConfig())
    assert config_hash(RunConfig(bits=[2, 4, 8, 32])) == config_hash(RunConfig(bits="32,8,4,2"))
    assert config_hash(RunConfig(coreset="emq-topk", fraction=1 / 2)) == config_hash(RunConfig(**BASE))


def test_hash_is_stable_across_processes():
    configs = {"default": RunConfig(), "changed": RunConfig(**{**BASE, "bits": (1, 2, 32), "milestones": (1, 3)})}
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
    config = RunConfig(**{**BASE, "bits": (1, 2, 32), "milestones": (3, 5), "train_per_class": 7})
    values = json.loads(json.dumps(config.to_dict()))  # as stored in a run's config.json
    again = RunConfig.from_dict(values)
    assert again == config and config_hash(again) == config_hash(config)
    assert isinstance(again.bits, tuple) and isinstance(again.milestones, tuple)
    # every field, but one added after runs were cached while it is at its default (older runs stay valid)
    assert set(values) == set(FIELD_PARTS) - set(ADDED_FIELDS)


# configurations whose hashes name runs in the cache, with the hashes the flat RunConfig gave them before it
# was split into parts: a change here would orphan every cached run of that kind
def _acs_config():
    return profile_config("cpu", method="dedicated", bits=(2,), activation_bits=32, weight_quantizer="lsq",
                          init_from_reference=True, distillation="reference", label_loss_weight=0.0, coreset="acs",
                          fraction=0.1)


PINNED_HASHES = {
    "32b8cfed8626a836": lambda: RunConfig(),
    "ed56dda59f0094a3": lambda: profile_config("smoke"),
    "7839d45977ec0358": lambda: profile_config("cpu"),
    "0b8670505f2cd0e4": lambda: profile_config("paper"),
    "d273b0313b1ea783": lambda: profile_config("cpu", short=True),
    "7bdbd785ea74f42d": lambda: profile_config("paper", method="joint", seed=2),
    "a05f893d90677322": _acs_config,
    "f7f70f62450c4ad5": lambda: reference_config(_acs_config()),  # tested after its last epoch only
    "1af3b941e9883c85": lambda: profile_config("cpu", coreset="emq-sample", fraction=0.3, sample_tau=2.0,
                                               sample_uniform_share=0.2, free_scores=True, warmup_epochs=1),
    "a9fe78504347c122": lambda: profile_config("cpu", coreset="emq-ccs", fraction=0.3, ccs_hard_share=0.2,
                                               ccs_strata=20),
    "42e3d865024f3326": lambda: _acs_config().replace(model="resnet20", replay_from="0123456789abcdef"),
}


@pytest.mark.parametrize("expected", sorted(PINNED_HASHES))
def test_cached_configurations_keep_their_hashes(expected):
    config = PINNED_HASHES[expected]()
    assert config_hash(config) == expected
    assert config_hash(RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))) == expected


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="nosuch_field"):
        RunConfig.from_dict({**RunConfig().to_dict(), "nosuch_field": 1})


def test_bits_are_sorted_descending_without_duplicates():
    assert RunConfig(bits=(2, 32, 4, 2)).bits == (32, 4, 2)
    assert RunConfig(bits="1-3,32").bits == (32, 3, 2, 1)


# ---------------------------------------------------------------- derived options

@pytest.mark.parametrize("method, bn_mode, bias_correction, distillation", [
    ("emq", "shared", True, "recursive"),
    ("joint", "switchable", False, "recursive"),
    ("dedicated", "switchable", False, "none"),
])
def test_derived_options_follow_the_method(method, bn_mode, bias_correction, distillation):
    config = RunConfig(method=method)
    assert (config.bn_mode, config.bias_correction, config.distillation) == (bn_mode, bias_correction, distillation)
    # replace re-derives them from the new method, whatever the starting method
    for start in METHODS:
        moved = RunConfig(method=start).replace(method=method)
        assert moved == config and config_hash(moved) == config_hash(config)


@pytest.mark.parametrize("changes, distillation", [
    (dict(coreset="random", fraction=0.5), "fp-child"),
    (dict(coreset="random", fraction=0.5, coreset_training="batch"), "recursive"),
    (dict(coreset="acs", fraction=0.5), "reference"),
    (dict(coreset="random", fraction=0.5, method="dedicated"), "none"),
])
def test_distillation_follows_the_coreset(changes, distillation):
    assert RunConfig(**changes).distillation == distillation
    assert RunConfig().replace(**changes).distillation == distillation


def test_explicit_options_survive_replace():
    config = RunConfig(method="joint", bn_mode="shared", bias_correction=True)
    moved = config.replace(method="dedicated")
    assert moved.bn_mode == "shared" and moved.bias_correction is True
    assert moved.distillation == "none"  # this one was derived, so it is derived again


def test_training_loop_and_reference_need():
    assert RunConfig().training_loop == "joint" and not RunConfig().needs_reference
    assert RunConfig(method="dedicated").training_loop == "sequential"
    assert RunConfig(**BASE).training_loop == "sequential"
    assert RunConfig(**BASE, coreset_training="batch").training_loop == "batch"
    assert RunConfig(coreset="acs", fraction=0.5).needs_reference
    assert RunConfig(init_from_reference=True).needs_reference


def test_lsq_uses_plain_full_precision_weights():
    assert RunConfig(weight_quantizer="lsq").full_precision_weight == "plain"


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("field, allowed", [
    ("method", METHODS), ("model", MODEL_NAMES), ("dataset", DATASETS), ("coreset", CORESETS),
])
def test_unknown_names_list_the_allowed_values(field, allowed):
    with pytest.raises(ValueError) as info:
        RunConfig(**{field: "nosuch"})
    message = str(info.value)
    assert field in message and "'nosuch'" in message
    for value in allowed:
        assert repr(value) in message


@pytest.mark.parametrize("bits", [0, -1, 9, 16, 31, 33, "two", [], 2.5, (0,), (-1,), (9,), (16,), (31,), (33,),
                                  (2.5,), ("two",), (True,), "9", "", None])
def test_bad_bits_are_rejected(bits):
    with pytest.raises(ValueError, match="bit"):
        RunConfig(bits=bits)


@pytest.mark.parametrize("activation_bits", [0, 9, 2.5, "4"])
def test_bad_activation_bits_are_rejected(activation_bits):
    with pytest.raises(ValueError, match="bits must be an integer in 1..8 or 32"):
        RunConfig(activation_bits=activation_bits)


@pytest.mark.parametrize("fraction", [0, 0.0, -0.5, 1.5, True])
def test_bad_fraction_is_rejected(fraction):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        RunConfig(coreset="random", fraction=fraction)


def test_fraction_and_coreset_must_agree():
    with pytest.raises(ValueError, match="needs a coreset method"):
        RunConfig(fraction=0.5)
    with pytest.raises(ValueError, match="keeps every sample"):
        RunConfig(coreset="emq-topk")
    # random at 1.0: every sample, in the coreset runs' bit-wise loop (an equal-budget baseline)
    assert RunConfig(coreset="random").training_loop == "sequential"
    assert RunConfig().training_loop == "joint"


@pytest.mark.parametrize("changes, message", [
    (dict(label_noise=1.0), "label noise rate"),
    (dict(label_noise=-0.1), "label noise rate"),
    (dict(reselect_every=0), "reselect_every"),
    (dict(epochs=0), "epochs"),
    (dict(epochs=2.0), "epochs"),
    (dict(epochs=True), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(reference_epochs=0), "reference_epochs"),
    (dict(train_per_class=0), "train_per_class"),
    (dict(seed=-1), "seed"),
    (dict(snapshot_every=-1), "snapshot_every"),
    (dict(width=0), "width"),
    (dict(width="wide"), "width"),
    (dict(lr=0.0), "lr"),
    (dict(lr=-1e-3), "lr"),
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(bn_mode="nosuch"), "bn_mode"),
    (dict(distillation="nosuch"), "distillation"),
    (dict(acs_schedule="nosuch"), "acs_schedule"),
    (dict(method="dedicated", distillation="recursive"), "recursive"),
    (dict(bits=(2, 4), coreset="random", fraction=0.5, distillation="fp-child"), "fp-child"),
    (dict(distillation="none", label_loss_weight=0.0), "label_loss_weight"),
    (dict(method="dedicated", coreset="random", fraction=0.5, coreset_training="batch"), "dedicated"),
    (dict(coreset="random", fraction=0.5, static=True), "random-once"),
    (dict(coreset="random", fraction=0.5, free_scores=True), "free_scores"),
    (dict(coreset="infobatch", fraction=1.0, free_scores=True), "free_scores"),
    (dict(coreset="emq-topk", fraction=0.5, free_scores=True, emq_score="grand"), "el2n"),
    (dict(coreset="emq-topk", fraction=0.5, free_scores=True, warmup_epochs=0), "warmup_epochs"),
    (dict(coreset="emq-sample", fraction=0.5, free_scores=True, coreset_training="batch"), "sequential"),
    (dict(coreset="infobatch", fraction=1.0, coreset_training="batch"), "sequential"),
    (dict(coreset="infobatch", fraction=0.5), "leave fraction at 1.0"),
    (dict(warmup_epochs=-1), "warmup_epochs"),
    (dict(sample_tau=-1.0), "sample_tau"),
    (dict(sample_uniform_share=1.5), "sample_uniform_share"),
    (dict(ccs_hard_share=1.0), "ccs_hard_share"),
    (dict(ccs_strata=0), "ccs_strata"),
    (dict(infobatch_prune_prob=0.0), "infobatch_prune_prob"),
    (dict(infobatch_anneal=1.5), "infobatch_anneal"),
    (dict(validation_per_class=0), "validation_per_class"),
    (dict(validation_per_class=5, test_per_class=5), "validation_per_class"),
])
def test_bad_values_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**changes)


def test_warmup_defaults_to_r_from_scratch_and_0_from_the_reference():
    assert RunConfig(coreset="emq-sample", fraction=0.2, reselect_every=4).warmup_epochs == 4
    assert RunConfig(coreset="emq-sample", fraction=0.2, init_from_reference=True).warmup_epochs == 0
    assert RunConfig(coreset="emq-sample", fraction=0.2).replace(reselect_every=3).warmup_epochs == 3  # derived again
    assert RunConfig(coreset="emq-sample", fraction=0.2, warmup_epochs=1).replace(reselect_every=3).warmup_epochs == 1
    assert RunConfig(coreset="infobatch").fraction == 1.0  # InfoBatch's kept share is not set by fraction


def test_the_reference_run_trains_without_the_validation_samples():
    assert reference_config(RunConfig(coreset="el2n", fraction=0.5, validation_per_class=20)).validation_per_class == 20


def test_replace_validates():
    with pytest.raises(ValueError, match="epochs"):
        RunConfig().replace(epochs=0)


# ---------------------------------------------------------------- profiles and the reference run

@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profiles_build(profile):
    config = profile_config(profile)
    for name, value in PROFILES[profile].items():
        assert getattr(config, name) == (tuple(sorted(value, reverse=True)) if name == "bits" else value)
    assert profile_config(profile, seed=3).seed == 3


def test_profile_choices():
    assert profile_config("smoke").dataset == "synthetic"
    assert profile_config("cpu").dataset == "fashion-mnist"
    paper = profile_config("paper")
    assert (paper.dataset, paper.model, paper.width, paper.bits) == ("cifar10", "resnet20", 5.0, (32, 8, 4, 2, 1))
    assert (paper.epochs, paper.milestones, paper.augment) == (200, (100, 150, 180), True)


def test_unknown_profile_lists_the_profiles():
    with pytest.raises(ValueError) as info:
        profile_config("nosuch")
    for name in ("smoke", "cpu", "paper"):
        assert name in str(info.value)


def test_reference_config_is_a_dedicated_full_precision_run():
    config = RunConfig(coreset="acs", fraction=0.3, train_per_class=20, label_noise=0.1, seed=4, reference_epochs=2)
    reference = reference_config(config)
    assert reference.method == "dedicated" and reference.bits == (32,)
    assert reference.record_trajectory and reference.coreset == "none" and reference.fraction == 1.0
    assert reference.epochs == 2 and reference.eval_every == 2  # tested once, after its last epoch
    for name in ("dataset", "train_per_class", "label_noise", "model", "width", "seed", "batch_size", "lr"):
        assert getattr(reference, name) == getattr(config, name)
    assert not reference.needs_reference


def test_reference_config_is_shared_by_coreset_variants():
    a = reference_config(RunConfig(coreset="acs", fraction=0.3))
    b = reference_config(RunConfig(coreset="el2n", fraction=0.5, epochs=9, reselect_every=2))
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(reference_config(RunConfig(coreset="acs", fraction=0.3, seed=1)))


# ---------------------------------------------------------------- command line: bad input

CLI_CASES = {
    "unknown-method": (["--method", "nosuch"], "method"),
    "bits-two": (["--bits", "two"], "bits"),
    "bits-9": (["--bits", "9"], "bits"),
    "fraction-0": (["--fraction", "0"], "fraction"),
    "fraction-1.5": (["--fraction", "1.5"], "fraction"),
    "fraction-0-with-coreset": (["--coreset", "random", "--fraction", "0"], "fraction"),
    "label-noise-1": (["--set", "label_noise=1.0"], "label noise"),
    "reselect-every-0": (["--reselect-every", "0"], "reselect_every"),
    "profile-nosuch": (["--profile", "nosuch"], "profile"),
    "epochs-abc": (["--set", "epochs=abc"], "epochs"),
    "unknown-field": (["--set", "nosuch=1"], "nosuch"),
}

def _runs_dir_is_empty(path) -> bool:
    return not path.exists() or not any(path.iterdir())


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_input_is_one_error_line_and_writes_nothing(tmp_path, monkeypatch, cli, case):
    monkeypatch.setenv("EMQ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("EMQ_DOWNLOAD", raising=False)
    code, out, err = cli(["train", "--profile", "smoke", *CLI_CASES[case][0]])
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


@pytest.mark.parametrize("changes", [{"milestones": (3, 1)}, {"milestones": (0,)}, {"momentum": 1.0},
                                     {"weight_decay": -1e-4}, {"label_loss_weight": -1.0}, {"augment": 1},
                                     {"static": "yes"}])
def test_out_of_range_optimisation_and_flag_values_are_refused(changes):
    with pytest.raises(ValueError):
        RunConfig(**changes)


def test_the_32_bit_activation_follows_the_method():
    assert RunConfig(method="emq").full_precision_activation == "clamp"
    assert RunConfig(method="joint").full_precision_activation == "relu"
    assert RunConfig(method="emq").replace(method="dedicated").full_precision_activation == "relu"
    assert RunConfig(method="emq", full_precision_activation="relu").full_precision_activation == "relu"


# ---------------------------------------------------------------- parts and flat names

def test_each_flat_name_belongs_to_exactly_one_part():
    owners = {}
    for part, cls in [(None, RunConfig), *PARTS.items()]:
        for f in dataclasses.fields(cls):
            if f.name in PARTS or (part == "quant" and f.name == "bits"):  # the parts; quant.bits mirrors bits
                continue
            assert f.name not in owners, f"{f.name} is in {owners[f.name]} and {part}"
            owners[f.name] = part
    assert owners == FIELD_PARTS
    config = RunConfig(**BASE)
    for name, part in FIELD_PARTS.items():
        assert getattr(config, name) == (config.__dict__[name] if part is None else getattr(getattr(config, part), name))
    assert config.quant.bits == config.bits
    assert set(FIELD_PARTS) <= set(dir(config))


def test_parts_built_whole_or_by_flat_names_agree():
    flat = RunConfig(train_per_class=50, label_noise=0.1, epochs=3, lr=0.01, coreset="random", fraction=0.5)
    nested = RunConfig(data=DataConfig(train_per_class=50, label_noise=0.1), optim=OptimConfig(epochs=3, lr=0.01),
                       selection=CoresetConfig(coreset="random", fraction=0.5))
    assert nested == flat and config_hash(nested) == config_hash(flat)
    assert flat.optim == OptimConfig(epochs=3, lr=0.01) and flat.data.train_per_class == 50
    # a flat name given next to its part wins; replace takes parts too
    assert RunConfig(optim=OptimConfig(epochs=3), epochs=4).epochs == 4
    assert flat.replace(optim=OptimConfig(epochs=7)).optim == OptimConfig(epochs=7)
    # the quantization part is the QuantSpec the layers get, resolved for the method
    assert RunConfig().quant == QuantSpec(bias_correction=True, full_precision_activation="clamp", bits=(32, 8, 4, 2))
    assert RunConfig(method="joint").quant == QuantSpec(bits=(32, 8, 4, 2))


def test_flat_names_are_read_only_and_unknown_names_are_refused():
    config = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3
    assert not hasattr(config, "nosuch")
    with pytest.raises(TypeError, match="nosuch"):
        RunConfig(nosuch=1)
    with pytest.raises(TypeError, match="DataConfig"):
        RunConfig(data=OptimConfig())


def test_config_survives_pickling():
    """The worker pool sends configurations to spawned processes."""
    config = RunConfig(**BASE, epochs=3)
    again = pickle.loads(pickle.dumps(config))
    assert again == config and again.epochs == 3 and config_hash(again) == config_hash(config)


def test_parts_validate_on_their_own():
    with pytest.raises(ValueError, match="dataset must be one of"):
        DataConfig(dataset="nosuch")
    with pytest.raises(ValueError, match="epochs"):
        OptimConfig(epochs=0)
    with pytest.raises(ValueError, match="keeps every sample"):
        CoresetConfig(coreset="acs")
    with pytest.raises(ValueError, match="full_precision_weight='plain'"):
        QuantSpec(weight_quantizer="lsq")
    assert CoresetConfig(reselect_every=4).warmup_epochs == 4


@pytest.mark.parametrize("name", [n for n, part in FIELD_PARTS.items() if part == "data"])
def test_the_reference_run_takes_every_data_field(name):
    config = RunConfig(**BASE).replace(**{name: CHANGES[name]})
    assert reference_config(config).data == config.data


def test_field_names_flat_or_dotted():
    assert field_name("epochs") == field_name("optim.epochs") == "epochs"
    assert field_name("data.train_per_class") == "train_per_class" and field_name("seed") == "seed"
    with pytest.raises(ValueError, match=r"unknown configuration field 'nosuch'; known: \["):
        field_name("nosuch")
    with pytest.raises(ValueError, match=r"unknown configuration part 'model' in 'model.width'; parts: \["):
        field_name("model.width")
    with pytest.raises(ValueError, match=r"quant has no field 'epochs'; its fields: \['bias_correction'"):
        field_name("quant.epochs")
    assert field_name("quant.bits") == "bits"  # the run's bits, which quant.bits mirrors
