"""The gate's snapshot file: what is written is read back whole, and anything that is not
exactly a snapshot of this database under this UPSTREAM_TEMPLATE is refused with the reason."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gateway.gate.allowlist import Entry
from gateway.gate.snapshot import FORMAT, Origin, Snapshot, SnapshotRefused

DATABASE = "postgresql://dg:***@127.0.0.1:5432/dg"
TEMPLATE = "{app}.internal:80"
HOSTS: dict[str, Entry] = {
    "shop.acme.com": (1, "shop", "shop.internal:80"),
    "blog.acme.com": (2, "blog", "10.0.0.7:8080"),
    "acme.com": (3, "shop", "shop.internal:80"),
}


def origin() -> Origin:
    return Origin(database=DATABASE, identity="7716/dg/2", seq=41, synced_at=time.time() - 5)


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    return Snapshot(tmp_path / "gate.snapshot", DATABASE, TEMPLATE)


def test_what_is_written_is_read_back(snapshot: Snapshot) -> None:
    written = origin()
    snapshot.write(HOSTS, written)
    hosts, read = snapshot.read()
    assert hosts == HOSTS
    assert read == written
    # Written atomically: no temporary file is left beside it.
    assert [p.name for p in snapshot.path.parent.iterdir()] == ["gate.snapshot"]
    assert snapshot.path.stat().st_mode & 0o777 == 0o600


def test_a_new_snapshot_replaces_the_old(snapshot: Snapshot) -> None:
    snapshot.write(HOSTS, origin())
    snapshot.write({"only.acme.com": (9, "shop", "shop.internal:80")}, origin())
    assert list(snapshot.read()[0]) == ["only.acme.com"]


def test_an_empty_allowlist_is_a_snapshot_too(snapshot: Snapshot) -> None:
    snapshot.write({}, origin())
    assert snapshot.read()[0] == {}


def _header(path: Path) -> dict[str, object]:
    header: dict[str, object] = json.loads(path.read_bytes().partition(b"\n")[0])
    return header


def _rewrite(path: Path, header: dict[str, object]) -> None:
    body = path.read_bytes().partition(b"\n")[2]
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)


def test_missing(snapshot: Snapshot) -> None:
    with pytest.raises(SnapshotRefused, match="there is none"):
        snapshot.read()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[: len(data) - 7], "checksum"),  # cut short
        (lambda data: data.replace(b"blog.acme.com", b"blog.evil.com"), "checksum"),
        (lambda data: data.partition(b"\n")[0], "checksum"),  # the body lost
        (lambda data: b"\x00" * len(data), "not JSON"),
        (lambda data: b"", "not JSON"),
        (lambda data: b'{"format": "something else"}\n', "not a gate snapshot"),
    ],
)
def test_a_damaged_snapshot_is_refused(snapshot: Snapshot, damage: object, reason: str) -> None:
    snapshot.write(HOSTS, origin())
    assert callable(damage)
    snapshot.path.write_bytes(damage(snapshot.path.read_bytes()))
    with pytest.raises(SnapshotRefused, match=reason):
        snapshot.read()


def test_another_format_version_is_refused(snapshot: Snapshot) -> None:
    snapshot.write(HOSTS, origin())
    header = _header(snapshot.path)
    assert header["format"] == FORMAT
    _rewrite(snapshot.path, {**header, "version": 2})
    with pytest.raises(SnapshotRefused, match="format version is 2"):
        snapshot.read()


def test_a_count_that_does_not_hold_is_refused(snapshot: Snapshot) -> None:
    snapshot.write(HOSTS, origin())
    _rewrite(snapshot.path, {**_header(snapshot.path), "count": 4})
    with pytest.raises(SnapshotRefused, match="holds 3 names, not the 4"):
        snapshot.read()


def test_another_database_is_refused(snapshot: Snapshot, tmp_path: Path) -> None:
    snapshot.write(HOSTS, origin())
    elsewhere = Snapshot(snapshot.path, "postgresql://dg:***@10.0.0.9:5432/dg", TEMPLATE)
    with pytest.raises(SnapshotRefused, match="another database"):
        elsewhere.read()


def test_another_upstream_template_is_refused(snapshot: Snapshot) -> None:
    snapshot.write(HOSTS, origin())
    with pytest.raises(SnapshotRefused, match="UPSTREAM_TEMPLATE"):
        Snapshot(snapshot.path, DATABASE, "{app}.svc:80").read()
