"""The run shipped in pretrained/ for the quickstart: shipped with its provenance, installed into an empty run cache
as the same verified run, refused when damaged or of another configuration, and never used by make reproduce."""
from __future__ import annotations

import json
import shutil

import pytest

from emqlib.harness import reproduce, shipped
from emqlib.harness.config import config_hash, profile_config
from emqlib.harness.runs import get_run, is_done, run_path


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """A run cache and a pretrained/ folder of their own, and the smoke quickstart run trained in the cache."""
    monkeypatch.setenv("EMQ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(shipped, "SHIPPED", tmp_path / "pretrained")
    config = shipped.quickstart_config("smoke")
    get_run(config)
    return tmp_path, config


def test_a_shipped_run_installs_into_an_empty_cache_as_the_same_run(folders, capsys):
    tmp_path, config = folders
    target = shipped.ship_quickstart_run("smoke")
    assert target == tmp_path / "pretrained" / config_hash(config)
    provenance = json.loads((target / "provenance.json").read_text())
    assert set(provenance) >= {"commit", "machine", "test_accuracy"}
    assert set(provenance["test_accuracy"]) == {str(b) for b in config.model.bits}
    assert not (target / "checkpoint.json").exists()  # a finished run, not a training state
    trained = (run_path(config) / "final.pt").read_bytes()

    shutil.rmtree(run_path(config))  # an empty run cache, as on a fresh clone
    assert shipped.install(config)
    assert "using the run shipped in" in capsys.readouterr().err
    assert is_done(run_path(config)) and (run_path(config) / "final.pt").read_bytes() == trained
    assert not shipped.install(config)  # the cache has it now: nothing to do


def test_a_damaged_or_foreign_shipped_run_is_not_installed(folders):
    tmp_path, config = folders
    target = shipped.ship_quickstart_run("smoke")
    other = profile_config("smoke", "emq", seed=1)
    assert not shipped.install(other)  # nothing shipped for another seed: it trains as usual
    with open(target / "final.pt", "ab") as damaged:
        damaged.write(b"x")
    shutil.rmtree(run_path(config))
    assert not shipped.install(config) and not run_path(config).exists()


def test_make_reproduce_trains_the_quickstart_run_itself():
    quickstart = next(p for p in reproduce.notebooks() if p.stem == "00_quickstart")
    checked = reproduce.check_notebook(quickstart, {"profile": "cpu", **reproduce.OWN_RUNS[quickstart.stem]})
    assert checked["use_shipped_run"] is False
