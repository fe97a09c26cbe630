"""``python -m emqlib``: the command line (:mod:`emqlib.harness.cli`)."""
import sys

from .harness.cli import main

sys.exit(main())
