"""docs/method.md is what the code, the notebooks and the README cite: every section they cite
exists, and none of them cites SPEC, a file users do not have."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITING = [*sorted((ROOT / "emqlib").rglob("*.py")), *sorted((ROOT / "notebooks").glob("*.ipynb")), ROOT / "README.md",
          ROOT / "docs" / "usage.md", ROOT / "docs" / "engineering.md"]


def sections() -> set[str]:
    text = (ROOT / "docs" / "method.md").read_text()
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, re.M))


def cited(text: str) -> set[str]:
    found = set()
    for group in re.findall(r"docs/method\.md ((?:§[\d.]+(?:-§?[\d.]+)?(?:, )?)+)", text):
        found |= {s.rstrip(".") for s in re.findall(r"§?(\d+(?:\.\d+)?)", group)}
    return found


def test_every_cited_section_exists() -> None:
    known = sections()
    assert {"1", "2.1", "3.1", "5.1", "6.3", "6.4", "9"} <= known
    for path in CITING:
        missing = cited(path.read_text()) - known
        assert not missing, f"{path.relative_to(ROOT)} cites docs/method.md sections that do not exist: {sorted(missing)}"


def test_nothing_cites_spec() -> None:
    for path in CITING:
        assert "SPEC" not in path.read_text(), f"{path.relative_to(ROOT)} cites SPEC; cite docs/method.md or the paper"


def test_every_linked_file_exists() -> None:
    """The README and docs/ link to files and figures by relative paths; each must be in the repository
    (figures/claims_forest.png and the explorer screenshot included)."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)\)", path.read_text()):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)} links to {target}, which is missing"
