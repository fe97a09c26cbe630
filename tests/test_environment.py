"""The pinned environment: requirements.txt, environment.yml and pyproject agree, the installed
packages are the pinned ones, and the Makefile has the documented targets."""
from __future__ import annotations

import importlib.metadata
import re
import tomllib

import pytest

from emqlib.harness.paths import ROOT

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines, source: str) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = PIN.match(line)
        assert match, f"{source}: {line!r} is not pinned as name==version"
        name = _normalise(match.group(1))
        assert name not in pins, f"{source}: {name} is pinned twice"
        pins[name] = match.group(2)
    return pins


def requirements() -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    return _pins([line for line in lines if line], "requirements.txt")


def environment_yml() -> tuple[list[str], dict[str, str]]:
    """(conda dependencies, pip pins) of environment.yml, parsed by indentation."""
    conda, pip, in_dependencies, pip_indent = [], [], False, None
    for raw in (ROOT / "environment.yml").read_text().splitlines():
        line = raw.split("#")[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_dependencies = line.startswith("dependencies:")
            continue
        if not in_dependencies:
            continue
        item = line.strip()
        assert item.startswith("- "), f"environment.yml: unexpected line {raw!r}"
        item = item[2:].strip()
        if pip_indent is not None and indent > pip_indent:
            pip.append(item)
            continue
        pip_indent = None
        if item == "pip:":
            pip_indent = indent
        else:
            conda.append(item)
    return conda, _pins(pip, "environment.yml")


def test_requirements_and_environment_yml_pin_the_same_versions():
    conda, pip = environment_yml()
    assert pip == requirements()
    # conda itself installs only Python and pip: every library comes from the same pip pins
    assert sorted(re.split(r"[=<>]", c)[0] for c in conda) == ["pip", "python"]
    assert "python=3.11" in conda


def test_torch_and_torchvision_are_pinned():
    pins = requirements()
    assert pins["torch"] == "2.14.1"
    assert pins["torchvision"] == "0.29.1"


def test_pyproject_dependencies_are_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = requirements()
    names = [_normalise(re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0]) for dep in project["dependencies"]]
    assert names and all(name in pins for name in names), sorted(set(names) - set(pins))
    assert "pytest" in pins and "ipykernel" in pins  # make test and the notebooks need them
    assert project["requires-python"] == ">=3.11"


@pytest.mark.parametrize("package, version", sorted(requirements().items()))
def test_installed_versions_are_the_pinned_ones(package, version):
    assert importlib.metadata.version(package) == version


def makefile_rules() -> tuple[dict[str, list[str]], set[str]]:
    """{target: prerequisites} and the .PHONY targets of the Makefile."""
    rules, phony = {}, set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith(("\t", "#", " ")):
            continue
        match = re.match(r"^([A-Za-z0-9_.$()/-]+)\s*:(?![=:])(.*)$", line)
        if not match:
            continue
        target, prerequisites = match.group(1), match.group(2).split()
        if target == ".PHONY":
            phony.update(prerequisites)
        else:
            rules[target] = prerequisites
    return rules, phony


def test_makefile_targets():
    rules, phony = makefile_rules()
    for target in ("setup", "test", "reproduce", "lab", "bench", "clean", "report"):
        assert target in rules, f"Makefile has no target {target!r}"
        assert target in phony, f"{target!r} should be .PHONY"
    for target in ("test", "reproduce", "lab", "bench"):
        assert "setup" in rules[target], f"`make {target}` must depend on setup"
    assert "setup" not in rules["clean"]


def test_setup_installs_the_pinned_requirements_and_the_data():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -r requirements.txt" in makefile
    rules, _ = makefile_rules()
    assert "data" in rules["setup"]
    assert "scripts/ensure-data.sh" in makefile
    assert "apt-get install -y -qq dataset-fashion-mnist" in (ROOT / "scripts" / "ensure-data.sh").read_text()
