"""The benchmarks (`python -m bench.run`), run from a checkout, never installed.

They start the real servers the tests start (knot, a PostgreSQL cluster) and choose ports the
way the tests do, through `tests.support`: one launcher for each, so a benchmark measures the
same processes, configured the same way, that the tests check, and a run beside a test run
never takes a port the other holds. Type-checked with the rest (`mypy`, pyproject.toml).
"""
