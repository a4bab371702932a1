"""A local user against the gate's snapshot file (GATE_SNAPSHOT).

The snapshot decides which names an edge restarted during a database outage allows, and its
checksum is no signature: whoever can write the file, or put a file in its place, chooses those
names. So the gate reads only a regular file this process's user owns and no one else may write,
never a link, and writes it through a temporary file nobody could have prepared for it (an
attacker's file or link planted at a predictable temporary path would otherwise be written
through, or renamed into place still theirs).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domaingate.errors import DomaingateError
from domaingate.hostnames import gate_key, normalize
from gateway.gate.allowlist import Entry
from gateway.gate.snapshot import Origin, Snapshot, SnapshotRefused

DATABASE = "postgresql://dg:***@127.0.0.1:5432/dg"
TEMPLATE = "{app}.internal:80"
HOSTS: dict[str, Entry] = {"shop.acme.com": (1, "shop", "shop.internal:80")}
FORGED: dict[str, Entry] = {"bank.example": (99, "shop", "shop.internal:80")}
NOBODY = 65534


def origin() -> Origin:
    return Origin(database=DATABASE, identity="7716/dg/2", seq=41, synced_at=time.time() - 5)


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    return Snapshot(tmp_path / "gate.snapshot", DATABASE, TEMPLATE)


def forged(tmp_path: Path) -> Path:
    """A well-formed snapshot of this database and template, naming a name nobody allowed."""
    other = Snapshot(tmp_path / "elsewhere" / "forged.snapshot", DATABASE, TEMPLATE)
    other.path.parent.mkdir()
    other.write(FORGED, origin())
    return other.path


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602], ids=oct)
def test_a_snapshot_others_may_write_is_refused(snapshot: Snapshot, mode: int) -> None:
    snapshot.write(HOSTS, origin())
    snapshot.path.chmod(mode)
    with pytest.raises(SnapshotRefused, match="writable by other users"):
        snapshot.read()


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another user takes root")
def test_a_snapshot_another_user_owns_is_refused(snapshot: Snapshot, tmp_path: Path) -> None:
    path = forged(tmp_path)
    os.chown(path, NOBODY, NOBODY)
    os.replace(path, snapshot.path)
    with pytest.raises(SnapshotRefused, match="owned by"):
        snapshot.read()


def test_a_link_at_the_snapshot_path_is_not_followed(snapshot: Snapshot, tmp_path: Path) -> None:
    snapshot.path.symlink_to(forged(tmp_path))
    with pytest.raises(SnapshotRefused, match="symbolic link"):
        snapshot.read()


def test_a_directory_at_the_snapshot_path_is_refused(snapshot: Snapshot) -> None:
    snapshot.path.mkdir()
    with pytest.raises(SnapshotRefused, match="not a regular file"):
        snapshot.read()


def _predictable(snapshot: Snapshot) -> Path:
    # The temporary name a writer that names it after its process would use.
    return snapshot.path.with_name(f".{snapshot.path.name}.{os.getpid()}.tmp")


def test_a_link_planted_at_a_temporary_path_is_not_written_through(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"the gateway user's file\n")
    _predictable(snapshot).symlink_to(victim)
    snapshot.write(HOSTS, origin())
    assert victim.read_bytes() == b"the gateway user's file\n"
    assert snapshot.read()[0] == HOSTS
    assert not snapshot.path.is_symlink()


def test_a_file_planted_at_a_temporary_path_is_not_renamed_into_place(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    planted = _predictable(snapshot)
    planted.write_bytes(b"")
    planted.chmod(0o666)  # the planter keeps writing to it after the rename
    if os.geteuid() == 0:
        os.chown(planted, NOBODY, NOBODY)
    snapshot.write(HOSTS, origin())
    written = snapshot.path.stat()
    assert written.st_ino != planted.stat().st_ino
    assert written.st_uid == os.geteuid()
    assert written.st_mode & 0o777 == 0o600
    assert snapshot.read()[0] == HOSTS


def test_written_private_under_any_umask(snapshot: Snapshot) -> None:
    previous = os.umask(0)
    try:
        snapshot.write(HOSTS, origin())
    finally:
        os.umask(previous)
    assert snapshot.path.stat().st_mode & 0o777 == 0o600
    assert snapshot.read()[0] == HOSTS


def test_a_snapshot_from_the_future_is_refused(snapshot: Snapshot) -> None:
    # Written while the clock was an hour ahead: taken at its word, it would count as fresh for
    # an hour past GATE_MAX_STALENESS.
    ahead = Origin(database=DATABASE, identity="7716/dg/2", seq=41, synced_at=time.time() + 3600)
    snapshot.write(HOSTS, ahead)
    with pytest.raises(SnapshotRefused, match="in the future"):
        snapshot.read()
    # A hair ahead (clocks adjusted between write and read) is read, as just synced.
    snapshot.write(HOSTS, Origin(database=DATABASE, identity="", seq=1, synced_at=time.time() + 1))
    assert snapshot.read()[0] == HOSTS


@settings(max_examples=200, deadline=None)
@given(raw=st.lists(st.text(min_size=1, max_size=40), max_size=20))
def test_every_name_accepted_round_trips_exactly(raw: list[str], tmp_path_factory: Any) -> None:
    """What an edge restarted in an outage allows is exactly what it allowed: each name the
    hostname rules accept reads back as itself, under the gate's own lookup key."""
    names: dict[str, Entry] = {}
    for text in raw:
        try:
            name = normalize(text)
        except DomaingateError:
            continue
        names[name] = (len(names) + 1, "shop", "shop.internal:80")
    snapshot = Snapshot(tmp_path_factory.mktemp("s") / "gate.snapshot", DATABASE, TEMPLATE)
    snapshot.write(names, origin())
    hosts = snapshot.read()[0]
    assert hosts == names
    assert all(gate_key(name) == name for name in hosts)


# Characters str.splitlines() breaks a line at besides "\n": a row holding one (the API stores
# none) must read back as itself, never as two lines or a refused snapshot.
@pytest.mark.parametrize("odd", ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"])
def test_a_name_with_a_line_break_of_another_kind_round_trips(snapshot: Snapshot, odd: str) -> None:
    hosts: dict[str, Entry] = {f"a{odd}bank.example": (1, "shop", "shop.internal:80"), **HOSTS}
    snapshot.write(hosts, origin())
    assert snapshot.read()[0] == hosts
