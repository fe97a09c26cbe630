"""Safe files: atomic writes that survive a crash, checksummed checkpoints, corrupt-file errors, locks."""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
import torch

from emqlib.harness import storage
from emqlib.harness.paths import ROOT
from emqlib.harness.storage import (CorruptFileError, atomic_write_bytes, atomic_write_text, file_lock, load_json, load_torch,
                            save_csv, save_json, save_torch, sha256)


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- atomic writes

def test_atomic_write_creates_folders_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a" / "b" / "file.bin"
    assert atomic_write_bytes(path, b"first") == path
    assert path.read_bytes() == b"first"
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert _listing(path.parent) == ["file.bin"]


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_crash_during_write_keeps_the_previous_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "state.json"
    save_json(path, {"epoch": 1})

    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, failing, crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_json(path, {"epoch": 2, "padding": "x" * 10000})
    monkeypatch.undo()
    assert load_json(path) == {"epoch": 1}
    assert _listing(tmp_path) == ["state.json"]  # no temporary file left behind
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_crash_during_first_write_leaves_nothing(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # also an interrupt cleans up

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "new.bin", b"data")
    assert _listing(tmp_path) == []


def test_temp_file_is_in_the_target_folder(tmp_path, monkeypatch):
    # the rename is only atomic within one file system: the temporary file must sit next to the target
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(src), os.path.dirname(dst), os.path.exists(src), os.path.exists(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_text(tmp_path / "x.txt", "hello")
    assert seen == [(str(tmp_path), str(tmp_path), True, False)]


def test_json_and_csv_round_trip(tmp_path):
    obj = {"b": [1, 2.5, None], "a": {"nested": "text"}}
    save_json(tmp_path / "x.json", obj)
    assert load_json(tmp_path / "x.json") == obj
    frame = pd.DataFrame({"bits": [2, 4, 32], "test_accuracy": [0.5, 0.75, 0.875]})
    save_csv(frame, tmp_path / "m.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "m.csv"), frame)


@pytest.mark.parametrize("content", ["{not json", '{"epoch": 1, "loss": ', ""])
def test_load_json_on_garbage_raises_corrupt_file_error(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(CorruptFileError) as info:
        load_json(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- checkpoints

@pytest.fixture
def checkpoint(tmp_path):
    obj = {"model": {"weight": torch.arange(2000, dtype=torch.float32).reshape(40, 50)}, "epoch": 3, "name": "x"}
    path = tmp_path / "ckpt" / "checkpoint.pt"
    digest = save_torch(obj, path)
    return obj, path, digest


def test_save_and_load_torch_round_trip(checkpoint):
    obj, path, digest = checkpoint
    assert digest == sha256(path.read_bytes()) and len(digest) == 64
    for loaded in (load_torch(path, digest), load_torch(path)):
        assert loaded["epoch"] == 3 and loaded["name"] == "x"
        assert torch.equal(loaded["model"]["weight"], obj["model"]["weight"])
    assert _listing(path.parent) == ["checkpoint.pt"]


@pytest.mark.parametrize("with_checksum", [True, False])
def test_truncated_checkpoint_raises(checkpoint, with_checksum):
    _, path, digest = checkpoint
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptFileError) as info:
        load_torch(path, digest if with_checksum else None)
    assert str(path) in str(info.value)


def test_checkpoint_with_one_flipped_byte_raises(checkpoint):
    _, path, digest = checkpoint
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError) as info:
        load_torch(path, digest)
    assert str(path) in str(info.value) and "checksum" in str(info.value)


def test_missing_checkpoint_raises(tmp_path):
    path = tmp_path / "nothing.pt"
    with pytest.raises(CorruptFileError, match="nothing.pt"):
        load_torch(path)


def test_garbage_checkpoint_without_checksum_raises(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(CorruptFileError, match="garbage.pt"):
        load_torch(path)


# ---------------------------------------------------------------- locks

def _is_locked(path) -> bool:
    """Whether another holder has an exclusive lock on ``path`` (a fresh open file description asks)."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_file_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / "sub" / "run.lock"
    with file_lock(path):
        assert path.exists() and _is_locked(path)
    assert not _is_locked(path)
    with pytest.raises(RuntimeError):
        with file_lock(path):
            raise RuntimeError("inside the lock")
    assert not _is_locked(path)  # released on error too


_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from emqlib.harness.storage import file_lock
    lock, held, released = sys.argv[1:4]
    with file_lock(lock):
        Path(held).write_text("held")
        time.sleep(1.0)
        Path(released).write_text(repr(time.time()))
""")


def test_file_lock_excludes_another_process(tmp_path):
    lock, held, released = tmp_path / "run.lock", tmp_path / "held", tmp_path / "released"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(lock), str(held), str(released)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not held.exists():
            assert holder.poll() is None, holder.stderr.read()
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.02)
        with file_lock(lock):
            acquired = time.time()
            assert released.exists(), "acquired the lock while the other process held it"
        assert acquired >= float(released.read_text())
    finally:
        holder.wait(timeout=60)
    assert holder.returncode == 0


def test_storage_writes_go_through_atomic_write(tmp_path, monkeypatch):
    # save_json, save_csv and save_torch all use the atomic path (a crash in it leaves the old file)
    calls = []
    real = storage.atomic_write_bytes
    monkeypatch.setattr(storage, "atomic_write_bytes", lambda path, data: calls.append(path) or real(path, data))
    save_json(tmp_path / "a.json", {})
    save_csv(pd.DataFrame({"x": [1]}), tmp_path / "b.csv")
    save_torch({"x": 1}, tmp_path / "c.pt")
    assert [p.name for p in calls] == ["a.json", "b.csv", "c.pt"]
