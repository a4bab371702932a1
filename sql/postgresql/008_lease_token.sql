-- The lease's fencing token, as ../008_lease_token.sql (SQLite): grows by one at every takeover
-- by another holder, never at a renewal; every write of the holder's jobs checks it.
ALTER TABLE leases ADD COLUMN token bigint NOT NULL DEFAULT 1;
