"""The renewal window Caddy 2.8+ keeps beside a certificate, in `{name}.json`.

certmagic writes the certificate's metadata there: `sans`, and `issuer_data`, which for an ACME
certificate holds the ACME Renewal Information (ARI) the CA last gave for it:

    {"sans": [...], "issuer_data": {"url": ..., "renewal_info": {
        "suggestedWindow": {"start": RFC 3339, "end": RFC 3339},
        "_uniqueIdentifier": "<AKI>.<serial>", "_retryAfter": ..., "_selectedTime": ...}}}

Only the suggested window counts (`domaingate.lifecycle.renewal`); `_uniqueIdentifier` says which
certificate the window belongs to, so a `.json` not yet rewritten after a renewal (the `.crt` and
the `.json` are stored one after the other) is not taken for the new certificate's.

Caddy before 2.8, a CA without ARI, or a non-ACME issuer leave no window: that is no error. A file
that is not JSON (corrupt, or caught half-written while Caddy 2.8 rewrites it in place) or whose
`renewal_info` is malformed raises MetadataError.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from domaingate.lifecycle.renewal import RenewalWindow


class MetadataError(ValueError):
    """A certificate's `.json` that cannot be used."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewalInfo:
    """The ARI window of a `.json`, and the certificate it was given for (None: not said)."""

    window: RenewalWindow
    cert_id: str | None


def parse_renewal_info(data: bytes) -> RenewalInfo | None:
    """The ARI window in a `.json`'s bytes, None when it holds none, or MetadataError."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"not JSON (corrupt, or cut short): {exc}") from exc
    if not isinstance(document, dict):
        raise MetadataError("not a JSON object")
    issuer_data = document.get("issuer_data")
    if not isinstance(issuer_data, dict) or issuer_data.get("renewal_info") is None:
        return None  # no ARI: Caddy before 2.8, a CA without it, or another issuer's data
    info = issuer_data["renewal_info"]
    if not isinstance(info, dict):
        raise MetadataError("issuer_data.renewal_info is not an object")
    suggested = info.get("suggestedWindow")
    if not isinstance(suggested, dict):
        raise MetadataError("issuer_data.renewal_info.suggestedWindow is missing")
    start, end = _time(suggested.get("start"), "start"), _time(suggested.get("end"), "end")
    if start is None or end is None:
        return None  # Go's zero time: certmagic's "no window"
    if end <= start:
        raise MetadataError("the suggested renewal window ends before it starts")
    cert_id = info.get("_uniqueIdentifier")
    return RenewalInfo(
        window=RenewalWindow(start=start, end=end),
        cert_id=cert_id if isinstance(cert_id, str) and cert_id else None,
    )


def _time(value: object, key: str) -> float | None:
    if not isinstance(value, str):
        raise MetadataError(f"suggestedWindow.{key} is not a time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MetadataError(f"suggestedWindow.{key} is not an RFC 3339 time: {value!r}") from exc
    if moment.tzinfo is None:
        raise MetadataError(f"suggestedWindow.{key} has no time zone: {value!r}")
    if moment.year <= 1:
        return None
    return moment.timestamp()


def ari_cert_id(cert: x509.Certificate) -> str:
    """The certificate's ARI unique identifier, as certmagic stores it in `_uniqueIdentifier`:
    base64url of the Authority Key Identifier's key id, a dot, base64url of the serial number's
    DER integer bytes, both without padding."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        key_id = aki.key_identifier or b""
    except x509.ExtensionNotFound:
        key_id = b""
    serial = cert.serial_number
    # DER integer content: big-endian two's complement, a leading zero byte when the top bit
    # is set (serials are positive).
    serial_bytes = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    return f"{_b64(key_id)}.{_b64(serial_bytes)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
