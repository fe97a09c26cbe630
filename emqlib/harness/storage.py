"""Safe files: atomic writes (temp file + rename), checksummed checkpoints, and locks.

A reader never sees a half-written file: every write goes to a temporary file in the same
folder, is flushed to disk, then renamed over the target in one step. The target is only ever a
regular file: a rename would put a file in the place of a device, a FIFO or a socket (as root, of
``/dev/null`` itself), so such a target is refused, as is a folder.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch


class CorruptFileError(RuntimeError):
    """A stored file is truncated, corrupt or does not match its recorded checksum."""


class NotARegularFileError(ValueError):
    """A write's target exists and is not a regular file (a folder, device, FIFO or socket)."""


_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
          stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket"}


def check_replaceable(path: str | os.PathLike) -> None:
    """Refuse (NotARegularFileError) a ``path`` that exists and is not a regular file, following
    symbolic links: an atomic write would replace it with a file."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS.items() if test(mode)), "a special file")
        raise NotARegularFileError(f"{path} is {kind}, not a regular file, and is never replaced; nothing was "
                                   "written: give a new file name or that of a regular file")


PARTIAL_WRITE_SUFFIX = ".tmp"  # what the temporary file of a write not yet renamed into place ends with


def _partial_write_prefix(name: str) -> str:
    """How the temporary file of a write of the file ``name`` begins (hidden, then the name)."""
    return f".{name}."


def is_partial_write(path: Path, of: str | None = None) -> bool:
    """Whether ``path`` is the temporary file of an :func:`atomic_write_bytes` that never reached its rename
    (its process was killed): a hidden file ending in :data:`PARTIAL_WRITE_SUFFIX`, of the file named ``of``
    when given."""
    prefix = _partial_write_prefix(of) if of is not None else "."
    return path.name.startswith(prefix) and path.name.endswith(PARTIAL_WRITE_SUFFIX) and path.is_file()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; a failure names ``path`` (a full disk's write(2)
    error names no file by itself)."""
    path = Path(path)
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_partial_write_prefix(path.name), suffix=PARTIAL_WRITE_SUFFIX)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; results are meant to be read by others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno is not None and error.filename is None:
            error.filename = str(path)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def save_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _corrupt(message: str, remedy: str | None) -> CorruptFileError:
    """A CorruptFileError whose message ends with what to do (``remedy``), when the caller knows it."""
    return CorruptFileError(f"{message}; {remedy}" if remedy else message)


def load_json(path: str | os.PathLike, remedy: str | None = None):
    """Parse the JSON file ``path``; a damaged one raises CorruptFileError naming it (and ``remedy``)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _corrupt(f"{path} is not valid JSON ({error})", remedy) from None


def save_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    return atomic_write_text(path, df.to_csv(index=False))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike) -> str | None:
    """sha256 of the file ``path``, or None when there is no such file."""
    try:
        return sha256(Path(path).read_bytes())
    except (FileNotFoundError, IsADirectoryError):
        return None


def save_torch(obj, path: str | os.PathLike) -> str:
    """torch.save ``obj`` atomically; returns the file's sha256 for :func:`load_torch`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return sha256(data)


def load_torch(path: str | os.PathLike, expected_sha256: str | None = None, remedy: str | None = None):
    """Load a file written by :func:`save_torch`, refusing a missing, truncated or altered one
    (CorruptFileError naming it; ``remedy``, the caller's advice, ends the message)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _corrupt(f"{path} is missing", remedy) from None
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise _corrupt(f"{path} is corrupt or truncated (checksum mismatch)", remedy)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises several types for damaged zip/pickle data
        raise _corrupt(f"{path} cannot be read ({type(error).__name__}: {error})", remedy) from None


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Exclusive inter-process lock on ``path`` (created if needed); waits until it is free."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
