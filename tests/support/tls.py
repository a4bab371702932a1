"""The TLS client of the end-to-end tests: what Caddy serves for a name, as a browser would ask."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from tests.support.net import HOST


@dataclass
class Fetched:
    certificate: x509.Certificate
    chain_verified: bool
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def tls_request(
    port: int,
    sni: str,
    *,
    root_pem: str | None,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Fetched:
    """Connect to 127.0.0.1:`port` with SNI `sni`, do one GET, return the served certificate
    and the answer. With `root_pem`, the chain and the name are verified against it (Pebble's
    root); without, the certificate is only inspected. Raises ssl.SSLError when the handshake
    fails."""
    if root_pem is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cadata=root_pem)
    with (
        socket.create_connection((HOST, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        lines = [f"GET {path} HTTP/1.1", f"Host: {sni}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = http.client.HTTPResponse(tls)
        try:
            response.begin()
            body = response.read()
        finally:
            response.close()
        return Fetched(
            certificate=x509.load_der_x509_certificate(der),
            chain_verified=root_pem is not None,
            status=response.status,
            headers=dict(response.getheaders()),
            body=body,
        )


def handshake(port: int, sni: str, *, timeout: float = 30.0) -> x509.Certificate:
    """A bare TLS handshake with SNI `sni`; the served leaf (unverified). Raises ssl.SSLError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((HOST, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)


def cert_names(certificate: x509.Certificate) -> list[str]:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return [str(name) for name in san.value.get_values_for_type(x509.DNSName)]
