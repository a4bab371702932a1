"""Reading what Caddy keeps beside a certificate (`reconciler.certificates.renewal_info`): the
ARI window in
`{name}.json` as Caddy writes it, the files that cannot be used, and the ARI identifier that ties a
window to its certificate. Pure: no files."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler.certificates.renewal_info import MetadataError, ari_cert_id, parse_renewal_info


def test_the_ari_identifier_is_the_one_in_the_ari_specification() -> None:
    # RFC 9773 §4.1's example: AKI 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4,
    # serial 00:87:65:43:21.
    key = ec.generate_private_key(ec.SECP256R1())
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "R11")]))
        .public_key(key.public_key())
        .serial_number(0x87654321)
        .not_valid_before(start)
        .not_valid_after(start.replace(month=3))
        .add_extension(x509.AuthorityKeyIdentifier(aki, None, None), critical=False)
        .sign(key, hashes.SHA256())
    )
    assert ari_cert_id(cert) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


@pytest.mark.parametrize(
    ("data", "window"),
    [
        (b'{"sans": ["a.test"]}', None),
        (b'{"sans": ["a.test"], "issuer_data": {"url": "x"}}', None),
        (b'{"sans": ["a.test"], "issuer_data": null}', None),
        (b'{"issuer_data": {"renewal_info": null}}', None),
        (  # Go's zero time: certmagic's "no window"
            b'{"issuer_data": {"renewal_info": {"suggestedWindow": '
            b'{"start": "0001-01-01T00:00:00Z", "end": "0001-01-01T00:00:00Z"}}}}',
            None,
        ),
        (
            b'{"issuer_data": {"renewal_info": {"suggestedWindow": '
            b'{"start": "2026-01-01T00:00:00.123456789Z", "end": "2026-01-02T00:00:00+01:00"}}}}',
            (1767225600.123456, 1767308400.0),
        ),
    ],
)
def test_renewal_info_is_read_from_what_caddy_writes(
    data: bytes, window: tuple[float, float] | None
) -> None:
    info = parse_renewal_info(data)
    if window is None:
        assert info is None
    else:
        assert info is not None and info.cert_id is None
        assert (info.window.start, info.window.end) == pytest.approx(window)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b'{"sans": ["a.te',
        b"\xff\xfe",
        b"[1, 2]",
        b'{"issuer_data": {"renewal_info": "soon"}}',
        b'{"issuer_data": {"renewal_info": {}}}',
        b'{"issuer_data": {"renewal_info": {"suggestedWindow": {"start": 1, "end": 2}}}}',
        b'{"issuer_data": {"renewal_info": {"suggestedWindow": '
        b'{"start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00"}}}}',
        b'{"issuer_data": {"renewal_info": {"suggestedWindow": '
        b'{"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}}}}',
        b'{"issuer_data": {"renewal_info": {"suggestedWindow": '
        b'{"start": "tomorrow", "end": "2026-01-01T00:00:00Z"}}}}',
    ],
)
def test_a_json_that_cannot_be_used_is_an_error(data: bytes) -> None:
    with pytest.raises(MetadataError):
        parse_renewal_info(data)
