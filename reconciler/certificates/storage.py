"""Certificates found in Caddy's file_system storage: an incremental scan of every issuer.

Caddy keeps a certificate at `{root}/certificates/{issuer-key}/{name}/{name}.crt`, the leaf first
and the chain after it, and its metadata beside it in `{name}.json`, where Caddy 2.8+ keeps the
renewal window the CA suggests (`renewal_info`). The scan reads every issuer directory,
keeps the certificate that ends latest for each name, and parses a file again only when its
(mtime_ns, size) changed, so a `.json` rewritten alone (an ARI refresh) is seen too; it reads no
other file (Caddy 2.9+ writes through temporary files beside these). A `.crt` that does not hold a
usable certificate is logged once per version and left out.

A `.json` that is missing, corrupt or caught half-written changes nothing: the window last read
from it stays (none, the first time: the certificate's lifetime alone then decides). It is logged
and counted as `metadata` once per version. A window given for another certificate (the `.json`
not yet rewritten after a renewal) is ignored.

What the scan cannot see is never taken as gone. Caddy rewrites a certificate file in place, so a
scan can meet one empty or cut short: its name is *unknown* for that scan, as is a name whose file
cannot be stat'ed or read, and the plan leaves such domains as they are. A storage or issuer
directory that cannot be listed hides every name, so the scan stops with `StorageUnreadable` and
nothing is planned from it. Each problem goes to `on_error` with its cause, `unreadable` or
`corrupt`; an unreadable path is logged when it starts failing, not at every scan.

Wildcard directories (`wildcard_.example.com`) are ignored: domaingate never attaches wildcards, so
such a certificate was configured by the operator outside the gate and says nothing about whether a
tenant's own certificate exists. Clean-up never touches them either.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as stat_mode
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from domaingate.lifecycle.renewal import CertFact, RenewalWindow
from reconciler.certificates.pem import BEGIN as PEM_BEGIN
from reconciler.certificates.pem import first_certificate
from reconciler.certificates.renewal_info import (
    MetadataError,
    RenewalInfo,
    ari_cert_id,
    parse_renewal_info,
)

log = logging.getLogger(__name__)

WILDCARD_PREFIX = "wildcard_"
# A certificate chain is a few KiB, and so is the .json Caddy writes beside it: nothing in the
# storage is read past this, whatever was put there.
MAX_FILE_OCTETS = 1 << 20


class CertError(ValueError):
    """A stored certificate file that cannot be used."""


class CertIncomplete(CertError):
    """A file that is empty or holds the start of a certificate without its end: how a file looks
    while Caddy rewrites it. Says nothing about the certificate it will hold."""


class StorageUnreadable(OSError):
    """A directory of the storage could not be listed: which names it holds is unknown."""


def certificates_dir(storage: Path) -> Path:
    return storage / "certificates"


def issuer_dirs(storage: Path) -> Iterator[Path]:
    """Every issuer directory under the storage root (none when the root does not exist yet)."""
    try:
        entries = list(os.scandir(certificates_dir(storage)))
    except FileNotFoundError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            yield Path(entry.path)


def read_file(path: str) -> bytes:
    """The content of the regular file at `path`, at most MAX_FILE_OCTETS + 1 octets of it.

    The reconciler may read every file of Caddy's storage (CAP_DAC_OVERRIDE), so neither the file
    nor its directory is followed if it is a symbolic link (OSError ELOOP or ENOTDIR): a link
    planted there must not hand it a private key from elsewhere. Nor does it wait on a FIFO.
    """
    directory, file_name = os.path.split(path)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd = os.open(
            file_name,
            os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            dir_fd=dir_fd,
        )
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as file:
        if not stat_mode.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return file.read(MAX_FILE_OCTETS + 1)


def load_leaf(data: bytes, *, name: str, issuer_key: str, path: Path) -> tuple[CertFact, str]:
    """The first PEM block of a `.crt` file as a CertFact, and the leaf's ARI unique
    identifier; or CertError."""
    block = first_certificate(data)
    if block is None:
        head = data.lstrip()[: len(PEM_BEGIN)]
        if PEM_BEGIN.startswith(head) or head.startswith(PEM_BEGIN):
            raise CertIncomplete(f"{path}: the certificate is empty or cut short (being written?)")
        raise CertError(f"{path}: no PEM certificate in the file")
    try:
        cert = x509.load_pem_x509_certificate(block)
    except ValueError as exc:
        raise CertError(f"{path}: the leaf certificate does not parse: {exc}") from exc
    if not _covers(cert, name):
        raise CertError(f"{path}: the certificate does not name {name} among its DNS names")
    fact = CertFact(
        name=name,
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        issuer=_issuer_label(cert) or issuer_key,
        issuer_key=issuer_key,
        path=path,
    )
    return fact, ari_cert_id(cert)


def _covers(cert: x509.Certificate, name: str) -> bool:
    # Caddy names the directory after the SAN it asked for; a file that disagrees was put there by
    # hand or is half-written, and must not make a domain active.
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return name in (dns.lower().rstrip(".") for dns in san.get_values_for_type(x509.DNSName))


def _issuer_label(cert: x509.Certificate) -> str | None:
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        for attribute in cert.issuer.get_attributes_for_oid(oid):
            value = attribute.value
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if text.strip():
                return text.strip()
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCerts:
    """What one scan found: the latest certificate per name, and the names it could not judge
    (see the module docstring), which the plan leaves alone."""

    certs: Mapping[str, CertFact]
    unknown: frozenset[str]


_Stamp = tuple[int, int]
ErrorHook = Callable[[str], object]
_MISSING: _Stamp = (-1, -1)  # the stamp of a `.json` that is not there


@dataclass(slots=True)
class _Leaf:
    """A parsed `.crt`: its stamp, the fact (None: unusable), whether it was found incomplete,
    and the leaf's ARI identifier."""

    stamp: _Stamp
    fact: CertFact | None
    incomplete: bool
    cert_id: str = ""


@dataclass(slots=True)
class _Meta:
    """A `.json` as last seen: its stamp and the last renewal info read from it whole."""

    stamp: _Stamp
    info: RenewalInfo | None


class CertScanner:
    """Scans one storage root; remembers what it parsed so an unchanged file costs one stat()."""

    def __init__(self, storage: Path, *, on_error: ErrorHook | None = None) -> None:
        self.storage = storage
        self.parsed = 0  # .crt files parsed since creation: tests and metrics read it
        self.metadata_read = 0  # .json files read since creation
        self._on_error = on_error
        # Keyed by the path as a string: building a Path per file per scan cost more than the
        # stat() itself. A leaf found incomplete keeps its name unknown until the file changes.
        self._cache: dict[str, _Leaf] = {}
        self._meta: dict[str, _Meta] = {}
        # Paths failing with an OSError now, so each is logged when it starts, not every scan.
        self._failing: set[str] = set()

    def scan(self) -> StoredCerts:
        """The latest certificate per name, and the names it could not judge. Blocking file I/O:
        run it in a thread.

        Raises StorageUnreadable (logged and reported already) when a directory cannot be listed.
        """
        latest: dict[str, CertFact] = {}
        seen: set[str] = set()
        unknown: set[str] = set()
        for issuer_dir in self._issuer_dirs():
            try:
                files = _crt_files(issuer_dir)
            except FileNotFoundError:
                self._failing.discard(str(issuer_dir))
                continue  # removed since the storage root was listed: its files are gone
            except OSError as exc:
                self._unreadable(str(issuer_dir), "cannot list", exc)
                raise StorageUnreadable(exc.errno, f"cannot list {issuer_dir}") from exc
            self._readable(str(issuer_dir))
            for path, name in files:
                seen.add(path)
                fact = self._fact(path, name, issuer_dir.name, unknown)
                if fact is None:
                    continue
                known = latest.get(name)
                if known is None or fact.not_after > known.not_after:
                    latest[name] = fact
        # Forget deleted files, so the caches stay the size of the storage.
        for gone in self._cache.keys() - seen:
            del self._cache[gone]
        for gone in self._meta.keys() - seen:
            del self._meta[gone]
        return StoredCerts(certs=latest, unknown=frozenset(unknown))

    def _issuer_dirs(self) -> list[Path]:
        root = certificates_dir(self.storage)
        try:
            found = list(issuer_dirs(self.storage))
        except OSError as exc:
            self._unreadable(str(root), "cannot list", exc)
            raise StorageUnreadable(exc.errno, f"cannot list {root}") from exc
        self._readable(str(root))
        return found

    def _fact(self, path: str, name: str, issuer_key: str, unknown: set[str]) -> CertFact | None:
        # One stat() per file and scan: it also says whether the .crt exists and is a file.
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._cache.pop(path, None)
            self._failing.discard(path)
            return None
        except OSError as exc:
            self._unreadable(path, "cannot stat", exc)
            self._cache.pop(path, None)
            unknown.add(name)
            return None
        if not stat_mode.S_ISREG(st.st_mode):
            self._cache.pop(path, None)
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(path)
        if cached is None or cached.stamp != stamp:
            cached = self._parse(path, name, issuer_key, stamp)
            if cached is None:
                unknown.add(name)
                return None
        if cached.incomplete:
            unknown.add(name)
        if cached.fact is None:
            return None
        window = self._renewal_window(path, cached.cert_id)
        if window != cached.fact.renewal_window:
            cached.fact = replace(cached.fact, renewal_window=window)
        return cached.fact

    def _parse(self, path: str, name: str, issuer_key: str, stamp: _Stamp) -> _Leaf | None:
        """Read and parse a `.crt` into the cache; None (not cached) if it cannot be read."""
        self.parsed += 1
        try:
            data = read_file(path)
        except OSError as exc:
            # Not cached: once it can be read again (a permission put back leaves the stamp as
            # it was) it is read at the next scan.
            self._unreadable(path, "cannot read", exc)
            self._cache.pop(path, None)
            return None
        self._readable(path)
        leaf = _Leaf(stamp=stamp, fact=None, incomplete=False)
        try:
            if len(data) > MAX_FILE_OCTETS:
                raise CertError(f"{path}: larger than {MAX_FILE_OCTETS} octets, unlike any chain")
            leaf.fact, leaf.cert_id = load_leaf(
                data, name=name, issuer_key=issuer_key, path=Path(path)
            )
        except CertError as exc:
            # Cached too: a broken file is reported once, not at every scan.
            leaf.incomplete = isinstance(exc, CertIncomplete)
            log.warning("skipping certificate: %s", exc)
            self._report("corrupt")
        self._cache[path] = leaf
        return leaf

    def _renewal_window(self, crt_path: str, cert_id: str) -> RenewalWindow | None:
        """The ARI window for the certificate `cert_id` in the `.json` beside `crt_path`."""
        # Keyed by the .crt's path, like the leaf cache, so both are pruned the same way.
        meta = self._meta.get(crt_path)
        path = crt_path[: -len(".crt")] + ".json"
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size) if stat_mode.S_ISREG(st.st_mode) else _MISSING
        except FileNotFoundError:
            stamp = _MISSING
            self._failing.discard(path)
        except OSError as exc:
            self._unreadable(path, "cannot stat", exc)
            return _window_for(meta.info if meta else None, cert_id)
        if meta is None or meta.stamp != stamp:
            # The last whole read stays through a version that cannot be used.
            info = meta.info if meta else None
            if stamp == _MISSING:
                log.warning(
                    "no certificate metadata at %s; the renewal window stays as it was", path
                )
                self._report("metadata")
            else:
                self.metadata_read += 1
                try:
                    data = read_file(path)  # not followed if a link, and capped, as a .crt
                except OSError as exc:
                    # Not cached, as for a .crt: read again at the next scan.
                    self._unreadable(path, "cannot read", exc)
                    return _window_for(info, cert_id)
                self._readable(path)
                try:
                    if len(data) > MAX_FILE_OCTETS:
                        raise MetadataError(f"larger than {MAX_FILE_OCTETS} octets")
                    info = parse_renewal_info(data)
                except MetadataError as exc:
                    log.warning("skipping certificate metadata %s: %s", path, exc)
                    self._report("metadata")
            meta = self._meta[crt_path] = _Meta(stamp=stamp, info=info)
        else:
            self._readable(path)  # it may have failed to stat
        return _window_for(meta.info, cert_id)

    def _unreadable(self, path: str, what: str, exc: OSError) -> None:
        self._report("unreadable")
        if path not in self._failing:
            self._failing.add(path)
            log.warning("%s %s: %s", what, path, exc.strerror or exc)

    def _readable(self, path: str) -> None:
        if self._failing and path in self._failing:
            self._failing.discard(path)
            log.info("%s can be read again", path)

    def _report(self, cause: str) -> None:
        if self._on_error is not None:
            self._on_error(cause)


def _window_for(info: RenewalInfo | None, cert_id: str) -> RenewalWindow | None:
    if info is None or (info.cert_id is not None and info.cert_id != cert_id):
        return None
    return info.window


def _crt_files(issuer_dir: Path) -> list[tuple[str, str]]:
    """(path of the .crt, name) for every name directory; OSError if it cannot be listed."""
    files = []
    for entry in sorted(os.scandir(issuer_dir), key=lambda e: e.name):
        name = entry.name
        if name.startswith(WILDCARD_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        # Whether the .crt exists is left to the caller's single stat().
        files.append((f"{entry.path}/{name}.crt", name.lower()))
    return files
