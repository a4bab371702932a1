"""Fixtures for the DNS check tests: real knot servers on loopback (see tests/knot.py)."""

from tests.knot import blackhole, knot_factory

__all__ = ["blackhole", "knot_factory"]
