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


@pytest.fixture
def cli(capsys):
    """Runs ``python -m emqlib ARGV`` in this process: (exit status, stdout, stderr) as the entry point
    would give them (its ``sys.exit(main())``; argparse's own errors exit with status 2)."""
    from emqlib.harness.cli import main

    def run(argv: list[str]) -> tuple[int, str, str]:
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
