"""domaingate's gateway and core: settings, hostname rules, store, DNS checks, the gate and the API."""
