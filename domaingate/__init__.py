"""The domaingate command line."""
