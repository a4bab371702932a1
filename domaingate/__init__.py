"""domaingate's core, shared by the gateway and the reconciler: settings, hostname rules, states,
the lifecycle, DNS checks and the store; and the `domaingate` command line (`domaingate.cli`)."""
