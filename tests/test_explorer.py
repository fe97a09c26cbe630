"""The live bit-width explorer: the correction switch, the views against the run's own evaluation,
the cache in the run folder, and the widget's redraw on a smoke EMQ run."""
from __future__ import annotations

import importlib.util
import re

import nbformat
import numpy as np
import pytest
import torch

from emqlib.harness import explorer
from emqlib.bits import SUPPORTED_BITS, bit_width
from emqlib.harness.config import profile_config
from emqlib.correction import bias_correct
from emqlib.inference import predict
from emqlib.harness.paths import ROOT
from emqlib.quant import QConv2d, quantize_weight
from emqlib.harness.runs import Run, get_run
from emqlib.harness.build import load_run_data

REDRAW_BOUND_S = 3.0  # generous: a redraw takes a few tenths of a second at the smoke profile


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    return get_run(profile_config("smoke", "emq"), root=tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def bit_explorer(run) -> explorer.BitWidthExplorer:
    return explorer.BitWidthExplorer(run)


def first_conv(model) -> QConv2d:
    return next(m for m in model.modules() if isinstance(m, QConv2d))


def test_bias_correction_switches_every_quantized_layer_and_restores_its_spec(run):
    model = run.model()
    conv = first_conv(model)
    specs = [m.spec for m in model.modules() if hasattr(m, "spec")]
    assert conv.spec.bias_correction  # an EMQ run is trained with the correction
    with torch.no_grad(), bit_width(model, 2):
        with explorer.bias_correction(model, False):
            assert not any(m.spec.bias_correction for m in model.modules() if hasattr(m, "spec"))
            assert torch.equal(conv.quantized_weight(), quantize_weight(conv.weight, 2))
        with explorer.bias_correction(model, True):
            expected = bias_correct(quantize_weight(conv.weight, 32), quantize_weight(conv.weight, 2),
                                    per_channel=conv.spec.per_channel, mode=conv.spec.correction_mode)
            assert torch.equal(conv.quantized_weight(), expected)
        with pytest.raises(RuntimeError), explorer.bias_correction(model, False):
            raise RuntimeError("restored even when the block fails")
    assert [m.spec for m in model.modules() if hasattr(m, "spec")] == specs


def test_the_switch_changes_nothing_at_32_bits_and_the_logits_below(run):
    model = run.model()
    _, test = load_run_data(run.config)
    logits = {}
    for correction in (True, False):
        with explorer.bias_correction(model, correction):
            logits[correction] = {b: predict(model, test, b) for b in (2, 32)}
    assert torch.equal(logits[True][32], logits[False][32])  # the 32-bit path is never corrected
    assert not torch.equal(logits[True][2], logits[False][2])


def test_views_agree_with_the_runs_own_evaluation(run, bit_explorer):
    assert set(bit_explorer.views) == {(b, c) for b in SUPPORTED_BITS for c in (True, False)}
    evaluation = run.evaluate("1-8,32")  # with the correction, as trained
    _, test = load_run_data(run.config)
    counts = np.bincount(test.targets.numpy(), minlength=test.num_classes)
    model = run.model()
    for b, accuracy in zip(evaluation.bits, evaluation.accuracy):
        view = bit_explorer.views[(b, True)]
        correct = round(accuracy * len(test) / 100)  # the evaluation averages in float32: compare counts
        assert view.accuracy == pytest.approx(100 * correct / len(test), abs=1e-9)
        assert (view.class_accuracy * counts).sum() / counts.sum() == pytest.approx(view.accuracy, abs=1e-9)
        expected = predict(model, test, b).argmax(1)[bit_explorer.grid].numpy()
        np.testing.assert_array_equal(view.grid_predictions, expected)
    # the histogram holds the chosen layer's input: at 32 bits it does not depend on the switch
    np.testing.assert_array_equal(bit_explorer.views[(32, True)].bn_input, bit_explorer.views[(32, False)].bn_input)
    assert not np.array_equal(bit_explorer.views[(2, True)].bn_input, bit_explorer.views[(2, False)].bn_input)
    assert bit_explorer.layer_name == "bn"  # the deepest multi-bit BatchNorm, before the classifier


def test_the_histogram_holds_the_layers_input_on_the_probe_images(run, bit_explorer):
    model = run.model()
    _, test = load_run_data(run.config)
    inputs = []
    handle = dict(model.named_modules())["bn"].register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    with torch.no_grad(), explorer.bias_correction(model, True), bit_width(model, 2):
        model(test.inputs(torch.arange(64)))  # the explorer's default 64 probe images
    handle.remove()
    values = inputs[0].flatten()
    sample = torch.randperm(len(values), generator=torch.Generator().manual_seed(0))[:explorer.HISTOGRAM_VALUES]
    np.testing.assert_array_equal(bit_explorer.views[(2, True)].bn_input, values[sample].numpy())


def test_grid_takes_the_classes_round_robin():
    targets = torch.tensor([1, 0, 0, 2, 1, 0])
    assert explorer.grid_indices(targets, 4).tolist() == [1, 0, 3, 2]
    assert explorer.grid_indices(targets, 10).tolist() == [1, 0, 3, 2, 4, 5]


def test_views_are_read_back_from_the_run_folder(run, bit_explorer, monkeypatch):
    assert bit_explorer.cache_path.exists() and bit_explorer.cache_path.parent == run.path

    def no_compute(*args, **kwargs):
        raise AssertionError("a cached view was computed again")

    monkeypatch.setattr(explorer, "compute_view", no_compute)
    again = explorer.BitWidthExplorer(run)
    for key, view in bit_explorer.views.items():
        cached = again.views[key]
        assert cached.accuracy == view.accuracy
        np.testing.assert_array_equal(cached.class_accuracy, view.class_accuracy)
        np.testing.assert_array_equal(cached.bn_input, view.bn_input)
    monkeypatch.undo()
    other = explorer.BitWidthExplorer(run, layer="layers.0.bn2")  # other settings: computed, kept beside
    assert other.cache_path != again.cache_path and other.cache_path.exists()


def test_the_widget_redraws_every_move_of_the_slider_and_the_switch(bit_explorer):
    box = bit_explorer.widget()
    slider, switch, status = box.children[0].children
    image = box.children[2]
    assert slider.value == 2 and switch.value is True  # the lowest trained bit-width, correction as trained
    assert [value for _, value in slider.options] == list(SUPPORTED_BITS)
    shown = {bytes(image.value)}
    bit_explorer.redraw_seconds.clear()
    for correction in (True, False):
        switch.value = correction
        for b in SUPPORTED_BITS:
            slider.value = b
            assert bytes(image.value)[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"test accuracy {bit_explorer.views[(b, correction)].accuracy:.2f}%" in status.value
            shown.add(bytes(image.value))
    assert len(shown) == 2 * len(SUPPORTED_BITS)  # every setting drew its own figure
    assert len(bit_explorer.redraw_seconds) >= 2 * len(SUPPORTED_BITS)  # one per change of the value
    assert max(bit_explorer.redraw_seconds) < REDRAW_BOUND_S, bit_explorer.redraw_seconds
    print(f"redraw seconds (smoke): median {np.median(bit_explorer.redraw_seconds):.2f}, "
          f"max {max(bit_explorer.redraw_seconds):.2f}")


def test_the_note_says_what_switching_the_correction_does(bit_explorer):
    note = bit_explorer.correction_note()
    assert "trained with" in note and "same weights" in note


@pytest.mark.parametrize("method, kwargs, message", [
    ("dedicated", {}, "Dedicated run"),
    ("emq", dict(bits="2,4"), "must include 32"),
    ("emq", dict(layer="no.such.layer"), "no multi-bit BatchNorm named 'no.such.layer'"),
])
def test_bad_input_is_one_clear_error_line(run, method, kwargs, message):
    config = profile_config("smoke", method)
    target = run if config == run.config else Run(run.path, config)
    with pytest.raises(ValueError, match=message) as error:
        explorer.BitWidthExplorer(target, **kwargs)
    assert "\n" not in str(error.value)


@pytest.fixture
def browser_check():
    """scripts/browser_check.py, loaded as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("browser_check", ROOT / "scripts" / "browser_check.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_browser_check_opens_a_copy_of_the_quickstart_at_the_chosen_profile(tmp_path, browser_check):
    source = nbformat.read(ROOT / "notebooks" / "00_quickstart.ipynb", as_version=4)
    copy = nbformat.read(browser_check.parameterized_copy(tmp_path, "smoke"), as_version=4)
    changed = [(a.source, b.source) for a, b in zip(source.cells, copy.cells) if a.source != b.source]
    assert len(copy.cells) == len(source.cells) and len(changed) == 1
    before, after = changed[0]
    assert re.match(r'profile = "smoke"', after) and after.splitlines()[1:] == before.splitlines()[1:]
    assert "browser-check" in (ROOT / "Makefile").read_text()


def test_the_browser_check_never_overwrites_the_readme_image_with_another_profile(browser_check, capsys):
    with pytest.raises(SystemExit) as exit_:
        browser_check.main(["--profile", "smoke"])
    assert exit_.value.code == 2 and "explorer.png is the cpu profile's screenshot" in capsys.readouterr().err
