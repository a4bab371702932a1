"""A tenant steering the operator's terminal: the records of its own zone, and rows as an old
version could have stored them, carry terminal control sequences (an OSC that retitles the
window, a CSI that clears the screen, C1 and bidi controls, a newline that forges a line); no
command prints one of them raw."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import pytest

from tests.domaingate.cli.test_cli import attach_rows, prepare, register_apps, run
from tests.support.knot import Knot, knot_fixture

pytestmark = pytest.mark.slow

# The CAA value the tenant publishes, in zone-file escapes: ESC ] 0 ; … BEL (the window title),
# ESC [ 2 J (clear the screen), a newline and a forged verdict, C1 CSI (U+009B), and RLO (U+202E).
HOSTILE = r"\027]0;owned\007\027[2J\010result: DNS is right\194\155" r"31m\226\128\174"
ZONES = {
    "apps.test": "web A 192.0.2.10\n",
    "hostile.test": f'@ CAA 128 tbs "{HOSTILE}"\nshop CNAME web.apps.test.\n',
}
served = knot_fixture(ZONES, scope="module")

# Any control character but the newline ending each line and the tab between a list's columns.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def assert_printable(text: str) -> None:
    assert RAW.search(text) is None, repr(text)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


@pytest.mark.knot
def test_check_and_verify_show_hostile_dns_escaped(db: Path, served: Knot) -> None:
    env = {
        "DOMAINGATE_RESOLVERS": f"{served.listen.host}:{served.listen.port}",
        "DOMAINGATE_PLATFORM_ZONE": "apps.test",
    }
    prepare(db, "acme")
    attach_rows(db, ("shop.hostile.test", "acme", "web", "pending"))
    check = run(db, "check", "shop.hostile.test", env=env)
    verify = run(db, "domains", "verify", "shop.hostile.test", env=env)
    for result in (check, verify):
        assert result.code == 1, result.out + result.err
        assert "FAIL caa [caa_forbids_issuance]" in result.out
        assert_printable(result.out + result.err)
        # Shown, escaped, for the operator to read; the forged verdict stays inside its line.
        assert r'tbs "\x1b]0;owned\x07\x1b[2J\nresult: DNS is right\x9b31m\u202e"' in result.out
        assert not re.search("^result: DNS is right", result.out, re.MULTILINE)
        assert "result: fix the records marked FAIL" in result.out
    assert "status: pending" in verify.out


def test_lists_show_planted_names_escaped(db: Path) -> None:
    """Rows no current version can write (names are checked when they are made), read back."""
    prepare(db, "acme")
    register_apps(db, "acme", "web")
    attach_rows(db, ("shop.acme.test", "acme", "web", "failed"))
    now = time.time()
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(
                "INSERT INTO tenants (name, token_hash, created_at) VALUES (?, ?, ?)",
                ("evil\x1b]0;owned\x07\tcorp", "0" * 64, now),
            )
            conn.execute(
                "INSERT INTO apps (name, tenant_id, upstream, created_at, updated_at)"
                " SELECT ?, id, ?, ?, ? FROM tenants WHERE name = 'acme'",
                ("app\x1b[2J", "up\u202estream:80", now, now),
            )
            conn.execute(
                "UPDATE domains SET hostname = ?, app = ?, last_check_code = ?",
                ("shop\x9b31m.acme.test", "app\x1b[2J", "code\nforged\tline"),
            )
    finally:
        conn.close()
    tenants = run(db, "tenant", "list")
    apps = run(db, "apps", "list")
    domains = run(db, "domains", "list")
    for result in (tenants, apps, domains):
        assert result.code == 0, result.err
        assert_printable(result.out + result.err)
    assert r"evil\x1b]0;owned\x07\tcorp" + "\tactive\t" in tenants.out
    assert "app\\x1b[2J\tacme\tup\\u202estream:80\n" in apps.out
    assert (
        domains.out == "shop\\x9b31m.acme.test\tfailed\tacme\tapp\\x1b[2J\tcode\\nforged\\tline\n"
    )
