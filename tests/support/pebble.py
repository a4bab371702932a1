"""Pebble, the ACME test CA, on loopback: it validates HTTP-01 and TLS-ALPN-01 for real against
Caddy's ports and resolves the names it validates through knot.

Pebble's own HTTPS listener gets a throwaway CA made here (`make_listener_certs`); Caddy is told
to trust that CA for the ACME directory. The CA that Pebble issues from is new on every start:
`Pebble.root_pem` is what clients of Caddy must trust.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from domaingate.settings import Listen
from tests.support.net import HOST, free_port
from tests.support.process import Process
from tests.support.wait import wait_until

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"


def make_listener_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf for 127.0.0.1/localhost: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "domaingate e2e listener CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address(HOST)),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


def _https_get(url: str, cafile: Path, timeout: float = 5.0) -> bytes:
    context = ssl.create_default_context(cafile=str(cafile))
    with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
        body: bytes = response.read()
        return body


# --- Pebble -------------------------------------------------------------------------------------


class Pebble:
    """Pebble 2.4 on loopback, validating challenges on Caddy's ports, resolving through knot."""

    def __init__(
        self,
        workdir: Path,
        *,
        dns: Listen,
        http_port: int,
        tls_port: int,
        validity: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.dns = dns
        self.http_port = http_port
        self.tls_port = tls_port
        self.validity = validity
        self.port = 0
        self.management_port = 0
        self.listener_ca = workdir / "ca.pem"
        self.process: Process | None = None
        self._root: str | None = None

    @property
    def directory_url(self) -> str:
        return f"https://{HOST}:{self.port}/dir"

    @property
    def issuer_key(self) -> str:
        """The directory name Caddy stores this CA's certificates under."""
        return f"{HOST}-{self.port}-dir"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ca, cert, key = make_listener_certs(self.workdir)
        assert ca == self.listener_ca
        self.port, self.management_port = free_port(), free_port()
        config: dict[str, Any] = {
            "listenAddress": f"{HOST}:{self.port}",
            "managementListenAddress": f"{HOST}:{self.management_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if self.validity is not None:
            config["certificateValidityPeriod"] = self.validity
        conf = self.workdir / "pebble.json"
        conf.write_text(json.dumps({"pebble": config}, indent=2), encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",
        }
        self.process = Process(
            "pebble",
            [PEBBLE, "-config", str(conf), "-dnsserver", str(self.dns)],
            env=env,
            cwd=self.workdir,
            log=self.workdir / "pebble.log",
        )
        self.process.start()
        wait_until(
            lambda: self._try(self.directory_url),
            timeout=15,
            what="Pebble's ACME directory",
            alive=self.process.check_alive,
        )
        self._root = _https_get(
            f"https://{HOST}:{self.management_port}/roots/0", self.listener_ca
        ).decode()

    def _try(self, url: str) -> bool:
        try:
            _https_get(url, self.listener_ca, timeout=1)
        except (OSError, urllib.error.URLError):
            return False
        return True

    @property
    def root_pem(self) -> str:
        """Pebble's issuing root (new on every start): what clients of Caddy must trust."""
        assert self._root is not None, "Pebble is not started"
        return self._root

    def orders(self) -> int:
        """New orders Pebble has received so far (one log line per order)."""
        assert self.process is not None
        return len(re.findall(r'Added order "', self.process.log_text()))

    def issued(self) -> int:
        """Certificates Pebble has issued so far (one log line per issuance)."""
        assert self.process is not None
        return len(re.findall(r"Issued certificate serial", self.process.log_text()))

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
