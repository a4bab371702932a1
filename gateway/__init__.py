"""domaingate's gateway and core: settings, hostname rules, store, DNS checks, gate and API."""
