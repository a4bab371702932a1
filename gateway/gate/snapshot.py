"""The gate's memory on disk: what lets an edge restarted while the database is unreachable go on
allowing the names it allowed, instead of denying every handshake until the database is back.

The follower (`gateway.gate.follow`) writes it after loading from the database and then at most
every `WRITE_EVERY` seconds while changes come in, and reads it only when the database cannot be
loaded at start. It is written whole to a temporary file beside it, flushed (fsync) and renamed
over the old one, so a crash leaves either the old snapshot or the new one, never half of one.

Its checksum is no signature: whoever can write the file, or put another in its place, chooses
the names an edge restarted in an outage allows. So it is read only if it is a regular file, not a
link, owned by this process's user and writable by no one else; and the temporary file is made
with a random name, exclusively (`tempfile.mkstemp`), so nothing another user planted beside it
is written through or renamed into place.

The format: one line of JSON (the format tag and version, the database it came from as settings
name it, the server's identity (`ChangeFeed.identity`), the change sequence, when the view last
matched the database, UPSTREAM_TEMPLATE, the apps, the count and the SHA-256 of the body), then
the body: a line `hostname TAB domain id TAB app number` per allowed name. A snapshot whose tag,
version, checksum or count do not hold, or that came from another database or another
UPSTREAM_TEMPLATE (its upstreams would be wrong), is refused with the reason: the gate then
starts empty and denies until it has loaded, as without one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.gate.allowlist import Entry

FORMAT = "domaingate-gate-snapshot"
VERSION = 1
# Seconds between snapshots while changes come in: a snapshot of a million names costs about a
# second of a thread, and the one at stop (or the next one) catches up.
WRITE_EVERY = 60.0
# How far in this host's future a snapshot's sync time may be (clocks adjusted by a hair between
# its write and its read). Further, its age is unknown: taken as none, it would be served fresh
# past GATE_MAX_STALENESS for as long as the clock was ahead when it was written.
FUTURE_TOLERANCE = 5.0


class SnapshotRefused(Exception):
    """The snapshot cannot be used; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    """Where a snapshot's names came from, and when they last matched it (Unix time)."""

    database: str
    identity: str
    seq: int
    synced_at: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The snapshot file of one gate: its path, and what a snapshot must match to be used."""

    path: Path
    database: str
    upstream_template: str

    def write(self, hosts: dict[str, Entry], origin: Origin) -> None:
        """Write `hosts` atomically (temporary file, fsync, rename, fsync of the directory)."""
        apps: dict[tuple[str, str], int] = {}
        lines: list[str] = []
        for hostname, (domain_id, app, upstream) in hosts.items():
            number = apps.setdefault((app, upstream), len(apps))
            lines.append(f"{hostname}\t{domain_id}\t{number}\n")
        body = "".join(lines).encode()
        header = {
            "format": FORMAT,
            "version": VERSION,
            "database": self.database,
            "identity": origin.identity,
            "seq": origin.seq,
            "synced_at": origin.synced_at,
            "upstream_template": self.upstream_template,
            "apps": [list(pair) for pair in apps],
            "count": len(lines),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        fd, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(header).encode() + b"\n")
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def read(self) -> tuple[dict[str, Entry], Origin]:
        """The snapshot's hostnames and origin; SnapshotRefused if it is missing, damaged, or
        not of this database and UPSTREAM_TEMPLATE."""
        data = _read_own(self.path)
        head, newline, body = data.partition(b"\n")
        try:
            header = json.loads(head)
        except ValueError:
            raise SnapshotRefused("its header is not JSON") from None
        _check(header, newline, body, database=self.database, template=self.upstream_template)
        hosts: dict[str, Entry] = {}
        try:
            apps = [(sys.intern(a), sys.intern(u)) for a, u in header["apps"]]
            # "\n" only: str.splitlines() also breaks at \r, \x1c, \x85 and others, which would
            # refuse a snapshot over one odd row (the API stores none, the database may hold one).
            for line in body.decode().split("\n")[:-1]:
                hostname, domain_id, number = line.split("\t")
                app, upstream = apps[int(number)]
                hosts[hostname] = (int(domain_id), app, upstream)
        except (ValueError, IndexError, TypeError):
            raise SnapshotRefused("its body is malformed") from None
        if len(hosts) != header["count"]:
            raise SnapshotRefused(f"it holds {len(hosts)} names, not the {header['count']} said")
        origin = Origin(
            database=header["database"],
            identity=str(header["identity"]),
            seq=int(header["seq"]),
            synced_at=float(header["synced_at"]),
        )
        return hosts, origin


def _read_own(path: Path) -> bytes:
    """The file's bytes, if only this process's user could have written them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SnapshotRefused("there is none") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SnapshotRefused("it is a symbolic link") from None
        raise SnapshotRefused(f"cannot read it: {exc.strerror}") from exc
    try:
        # Checked on the open file: what is read is what was checked.
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise SnapshotRefused("it is not a regular file")
        if found.st_uid != os.geteuid():
            raise SnapshotRefused(f"it is owned by uid {found.st_uid}, not this process's user")
        if found.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise SnapshotRefused(f"it is writable by other users (mode {found.st_mode & 0o777:o})")
        with os.fdopen(os.dup(fd), "rb") as file:
            return file.read()
    except OSError as exc:
        raise SnapshotRefused(f"cannot read it: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _check(header: Any, newline: bytes, body: bytes, *, database: str, template: str) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SnapshotRefused("it is not a gate snapshot")
    if header.get("version") != VERSION:
        raise SnapshotRefused(f"its format version is {header.get('version')!r}, not {VERSION}")
    if not newline or hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise SnapshotRefused("its checksum does not match (cut short or damaged)")
    if header.get("database") != database:
        raise SnapshotRefused(f"it is of another database ({header.get('database')})")
    if header.get("upstream_template") != template:
        raise SnapshotRefused("it was written under another UPSTREAM_TEMPLATE")
    for key, kind in (("apps", list), ("count", int), ("seq", int), ("synced_at", float | int)):
        if not isinstance(header.get(key), kind):
            raise SnapshotRefused(f"its header's {key} is malformed")
    if header["synced_at"] > time.time() + FUTURE_TOLERANCE:
        raise SnapshotRefused("it says it matched the database in the future: its age is unknown")
