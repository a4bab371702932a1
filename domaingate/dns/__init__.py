"""DNS checks: parallel lookups against every configured resolver, with a finding per check."""
