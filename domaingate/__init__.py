"""domaingate's core, shared by the gateway and the reconciler: settings, hostname rules, states,
the lifecycle (`domaingate.lifecycle`), instructions, errors, DNS checks and the store (all of the
SQL); and the `domaingate` command line (`domaingate.cli`). The core imports neither process; only
the command line starts them (import-linter contracts in pyproject.toml)."""
