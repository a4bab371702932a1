"""Hardening: hostile input, tenant isolation, crashes and faults."""
