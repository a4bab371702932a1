"""The first certificate block of a file: the same block the one-pattern regex it replaces found
(for files small enough for that regex to finish), and the same certificate for every line-end
and chain shape Caddy or an operator may leave."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.certificates.pem import first_certificate
from reconciler.certificates.storage import CertError, CertIncomplete, load_leaf

from ..conftest import DAY, make_issuer, make_leaf_pem

FAST = settings(max_examples=400, deadline=None, database=None)
# The reference: right, but quadratic in the number of BEGIN lines without an END.
REGEX = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL)
BEGIN = b"-----BEGIN CERTIFICATE-----"
END = b"-----END CERTIFICATE-----"
TOKENS = [BEGIN, END, b"\n", b"\r", b"\r\n", b"-", b"-----", b"A", b"QUFB", b" "]
NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC).timestamp()


def reference(data: bytes) -> bytes | None:
    match = REGEX.search(data)
    return None if match is None else match.group(0)


@FAST
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(b"".join))
@example(BEGIN + b"\n\n" + END)  # no body
@example(BEGIN + b"\r\n\r\n" + END)  # a body of one CR
@example(BEGIN + b"\nA\r\n" + END + b"\n" + BEGIN + b"\nB\n" + END)
@example(BEGIN + b"\r" + BEGIN + b"\nA\n" + END)
@example(BEGIN + b"\n" + END + b"\n" + END)
def test_the_block_found_is_the_one_the_regex_found(data: bytes) -> None:
    assert first_certificate(data) == reference(data)


def parse(data: bytes) -> tuple[float, float, str]:
    fact = load_leaf(data, name="a.test", issuer_key="local", path=Path("a.test.crt"))[0]
    return fact.not_before, fact.not_after, fact.issuer


@pytest.mark.parametrize(
    "reshape",
    [
        pytest.param(lambda pem: pem, id="lf chain"),
        pytest.param(lambda pem: pem.replace(b"\n", b"\r\n"), id="crlf chain"),
        pytest.param(lambda pem: pem[: pem.index(END) + len(END)], id="leaf alone, no line end"),
        pytest.param(lambda pem: b"Subject: a.test\n\n" + pem, id="explanatory text before"),
        pytest.param(lambda pem: b"\n \t" + pem + b"\ntrailing text\n", id="blanks and text"),
    ],
)
def test_every_shape_of_a_good_file_gives_its_leaf(reshape: Callable[[bytes], bytes]) -> None:
    pem = make_leaf_pem(make_issuer("R11"), ["a.test"], NOW - DAY, NOW + 60 * DAY)
    assert parse(reshape(pem)) == (NOW - DAY, NOW + 60 * DAY, "R11")


def test_broken_files_are_refused_as_before() -> None:
    pem = make_leaf_pem(make_issuer("R11"), ["a.test"], NOW - DAY, NOW + 60 * DAY)
    lines = pem.split(b"\n")
    lines[3] = b"A" * len(lines[3])
    with pytest.raises(CertError, match="does not parse") as corrupt:
        parse(b"\n".join(lines))
    assert not isinstance(corrupt.value, CertIncomplete)
    for cut_short in (b"", b"  \n", pem[:10], pem[: len(pem) // 4], BEGIN + b"\n" * 3):
        with pytest.raises(CertIncomplete):
            parse(cut_short)
    with pytest.raises(CertError, match="no PEM certificate") as other:
        parse(b"-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0\n-----END EC PRIVATE KEY-----\n")
    assert not isinstance(other.value, CertIncomplete)
