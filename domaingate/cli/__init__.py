"""The command line: `domaingate` and its subcommands (`main`), the composition root that starts
the daemons and runs the operator's commands against the store."""
