"""The harness adapts the project's Caddyfile in ports and paths only, and each Caddy of the matrix
reads the result as the gate's ask (2.6 in its own words, 2.11 as its `permission http` module)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from domaingate.settings import Listen
from tests.support.caddy import CADDYFILE, GATE_IN_CADDYFILE, render_caddyfile
from tests.support.caddy_binaries import CaddyBinary

pytestmark = pytest.mark.e2e


def test_rendered_caddyfile_differs_only_in_ports_and_paths(
    caddy: CaddyBinary, tmp_path: Path
) -> None:
    source = CADDYFILE.read_text(encoding="utf-8")
    rendered = render_caddyfile(
        source,
        gate=Listen("127.0.0.1", 40001),
        http_port=40002,
        https_port=40003,
        admin_port=40004,
        storage=tmp_path / "storage",
        acme_directory="https://127.0.0.1:40005/dir",
        acme_root=tmp_path / "ca.pem",
    )
    added = [line for line in rendered.splitlines() if line not in source.splitlines()]
    assert added == [
        "\tadmin 127.0.0.1:40004",
        "\tdefault_bind 127.0.0.1",
        "\thttp_port 40002",
        "\thttps_port 40003",
        "\tstorage file_system {",
        f"\t\troot {tmp_path / 'storage'}",
        "\tacme_ca https://127.0.0.1:40005/dir",
        f"\tacme_ca_root {tmp_path / 'ca.pem'}",
        "\t\task http://127.0.0.1:40001/tls-ask",
        "\t\tforward_auth 127.0.0.1:40001 {",
    ]
    # Put the gate's port back and drop the added global options: the shipped file remains.
    restored = rendered.replace("127.0.0.1:40001", GATE_IN_CADDYFILE).splitlines()
    kept = [line for line in restored if line not in added[:8] and line != "\t}"]
    assert kept == [line for line in source.splitlines() if line != "\t}"]

    config = tmp_path / "Caddyfile"
    config.write_text(rendered, encoding="utf-8")
    env = {**os.environ, "ACME_EMAIL": "e2e@example.com", "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(caddy.path), "adapt", "--adapter", "caddyfile", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    adapted = json.loads(result.stdout)
    (policy,) = adapted["apps"]["tls"]["automation"]["policies"]
    (issuer,) = policy["issuers"]
    assert issuer["ca"] == "https://127.0.0.1:40005/dir"
    assert issuer["trusted_roots_pem_files"] == [str(tmp_path / "ca.pem")]
    # The same `ask` line: 2.6 keeps it as its `ask` field; 2.8+ adapts it to the `permission`
    # module that replaced that field (2.6 has no such module).
    ask = "http://127.0.0.1:40001/tls-ask"
    expected = {
        "2.6": {"ask": ask},
        "2.11": {"permission": {"endpoint": ask, "module": "http"}},
    }[caddy.minor]
    assert adapted["apps"]["tls"]["automation"]["on_demand"] == expected
