"""Shared test settings."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """One intra-op thread, as the subprocesses of the tests (OMP_NUM_THREADS=1): the tiny models
    run faster so on a shared 2-core machine, and in-process and subprocess runs compute alike."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
