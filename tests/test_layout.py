"""The layout stays readable: no module of the three packages passes 400 lines, and every
package among them is installed.

A module holds one concept; one that grows past this has become several and is split (as
`domaingate/lifecycle/` was). The import walls between the packages are import-linter contracts
in pyproject.toml, which `scripts/check` runs.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domaingate", "gateway", "reconciler")
MAX_LINES = 400


def modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_the_packages_are_found() -> None:
    found = {path.relative_to(ROOT).as_posix() for path in modules()}
    assert {"domaingate/lifecycle/__init__.py", "gateway/app.py", "reconciler/daemon.py"} <= found


@pytest.mark.parametrize("path", modules(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_no_module_passes_400_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it by concept"


def test_every_package_is_installed() -> None:
    # The packages are listed by hand in pyproject.toml: one left out works in an editable
    # checkout and is missing from `pip install .`.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert found <= listed
