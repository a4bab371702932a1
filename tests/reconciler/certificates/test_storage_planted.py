"""What someone able to write Caddy's storage could plant there for the reconciler, which may read
and delete every file of it (CAP_DAC_OVERRIDE): symbolic links to files and directories outside
the storage, files far larger than any certificate, and a directory swapped for a link while the
clean-up runs. None of it may make the reconciler read or delete anything outside the storage.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from domaingate.lifecycle.renewal import CertFact
from domaingate.models import Tenant
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store.abc import Database
from reconciler import cleanup
from reconciler.certificates import storage as certs
from reconciler.certificates.storage import MAX_FILE_OCTETS, CertScanner, StoredCerts
from reconciler.cleanup import clean_removed

from ..conftest import DAY, Issuer, attach, make_issuer, make_leaf_pem, store_cert

LOCAL = "local"
NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def issuer() -> Issuer:
    return make_issuer("Caddy Local Authority - ECC Intermediate")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the storage, standing for the rest of the machine."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


def scan(storage: Path) -> tuple[StoredCerts, Mapping[str, CertFact], list[str]]:
    """What one scan found, its certificates by name, and the error causes it counted."""
    causes: list[str] = []
    stored = CertScanner(storage, on_error=causes.append).scan()
    return stored, stored.certs, causes


def name_dir(storage: Path, name: str) -> Path:
    path = storage / "certificates" / LOCAL / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def bytes_read() -> int:
    """What this process has read through read(2) and friends so far (/proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_link_to_a_certificate_elsewhere_is_not_followed(
    storage: Path, outside: Path, issuer: Issuer
) -> None:
    """The link would make a domain active on a certificate Caddy never stored for it."""
    pem = make_leaf_pem(issuer, ["victim.test"], NOW - DAY, NOW + 60 * DAY)
    (outside / "victim.test.crt").write_bytes(pem)
    (name_dir(storage, "victim.test") / "victim.test.crt").symlink_to(outside / "victim.test.crt")
    stored, found, causes = scan(storage)
    assert "victim.test" not in found
    assert causes == ["unreadable"]
    assert stored.unknown == {"victim.test"}  # not taken as gone either


def test_a_link_to_a_private_key_elsewhere_is_not_read(
    storage: Path, outside: Path, issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    key = outside / "platform.key"
    key.write_bytes(b"-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0IGtleSBtYXRlcmlhbA==\n")
    (name_dir(storage, "victim.test") / "victim.test.crt").symlink_to(key)
    store_cert(
        storage, LOCAL, "honest.test", make_leaf_pem(issuer, ["honest.test"], NOW, NOW + DAY)
    )
    _, found, causes = scan(storage)
    assert set(found) == {"honest.test"}
    # Opened and found to hold no certificate would say "corrupt": it was never opened.
    assert causes == ["unreadable"]
    assert "c2VjcmV0" not in caplog.text


def test_a_linked_name_directory_is_not_followed(
    storage: Path, outside: Path, issuer: Issuer
) -> None:
    elsewhere = outside / "victim.test"
    elsewhere.mkdir()
    pem = make_leaf_pem(issuer, ["victim.test"], NOW - DAY, NOW + 60 * DAY)
    (elsewhere / "victim.test.crt").write_bytes(pem)
    (storage / "certificates" / LOCAL).mkdir(parents=True)
    (storage / "certificates" / LOCAL / "victim.test").symlink_to(elsewhere)
    _, found, _ = scan(storage)
    assert found == {}


def test_a_name_directory_swapped_for_a_link_after_the_listing_is_not_followed(
    storage: Path, outside: Path, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = make_leaf_pem(issuer, ["victim.test"], NOW - DAY, NOW + 60 * DAY)
    real = store_cert(storage, LOCAL, "victim.test", pem).parent
    elsewhere = outside / "victim.test"
    elsewhere.mkdir()
    (elsewhere / "victim.test.crt").write_bytes(pem)
    listed = certs._crt_files

    def listing_then_swap(issuer_dir: Path) -> list[tuple[str, str]]:
        files = listed(issuer_dir)
        for child in real.iterdir():
            child.unlink()
        real.rmdir()
        real.symlink_to(elsewhere)
        return files

    monkeypatch.setattr(certs, "_crt_files", listing_then_swap)
    stored, found, causes = scan(storage)
    assert found == {}
    assert causes == ["unreadable"]
    assert stored.unknown == {"victim.test"}


def test_a_file_larger_than_any_chain_is_not_read_whole(storage: Path, issuer: Issuer) -> None:
    pem = make_leaf_pem(issuer, ["big.test"], NOW - DAY, NOW + 60 * DAY)
    path = store_cert(storage, LOCAL, "big.test", pem)
    with path.open("r+b") as file:
        file.truncate(64 * MAX_FILE_OCTETS)  # sparse: costs no disk, but reads as 64 MiB
    before = bytes_read()
    _, found, causes = scan(storage)
    assert bytes_read() - before < 2 * MAX_FILE_OCTETS
    assert found == {}
    assert causes == ["corrupt"]


# --- clean-up ---------------------------------------------------------------------------------


async def remove(db: Database, tenant: Tenant, name: str) -> None:
    """Attach, prove and detach `name`: clean-up deletes only certificates of proven names."""
    domain = await attach(db, tenant, name, time.time, status=Status.ACTIVE)
    await domain_store.remove(db, domain, time.time)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


async def test_clean_up_deletes_planted_links_but_nothing_they_point_at(
    db: Database, tenant: Tenant, storage: Path, outside: Path, issuer: Issuer
) -> None:
    # Outside: a directory named like the domain, and a private key.
    (outside / "victim.test").mkdir()
    (outside / "victim.test" / "victim.test.key").write_text("someone else's key")
    (outside / "platform.key").write_text("the platform's key")
    # In the storage: the name directory of one issuer is a link to the one outside; in another
    # issuer, a real directory whose files link outside.
    (storage / "certificates" / LOCAL).mkdir(parents=True)
    (storage / "certificates" / LOCAL / "victim.test").symlink_to(outside / "victim.test")
    pem = make_leaf_pem(issuer, ["victim.test"], NOW, NOW + DAY)
    real = store_cert(storage, "acme-v02.api.letsencrypt.org-directory", "victim.test", pem)
    (real.parent / "linked.key").symlink_to(outside / "platform.key")
    # An issuer directory that is itself a link to the outside.
    (storage / "certificates" / "evil").symlink_to(outside)
    await remove(db, tenant, "victim.test")
    before = tree(outside)

    result = await clean_removed(db, storage, time.time)

    assert result.errors == 0
    assert tree(outside) == before
    assert not (storage / "certificates" / LOCAL / "victim.test").is_symlink()
    assert not real.parent.exists()


async def test_clean_up_does_not_delete_through_an_issuer_directory_swapped_for_a_link(
    db: Database,
    tenant: Tenant,
    storage: Path,
    outside: Path,
    issuer: Issuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between the listing of the issuers and the deletion, the issuer directory becomes a link
    to a directory outside that holds a directory named like the domain."""
    pem = make_leaf_pem(issuer, ["victim.test"], NOW, NOW + DAY)
    issuer_dir = store_cert(storage, LOCAL, "victim.test", pem).parent.parent
    (outside / "victim.test").mkdir()
    (outside / "victim.test" / "precious").write_text("not Caddy's")
    await remove(db, tenant, "victim.test")
    listed = certs.issuer_dirs

    def listing_then_swap(root: Path) -> Iterator[Path]:
        found = list(listed(root))
        moved = storage / "moved-away"
        issuer_dir.rename(moved)
        issuer_dir.symlink_to(outside)
        yield from found

    monkeypatch.setattr(cleanup, "issuer_dirs", listing_then_swap)
    await clean_removed(db, storage, time.time)
    assert (outside / "victim.test" / "precious").read_text() == "not Caddy's"
