-- The lease's fencing token (reconciler.lease, domaingate.store.fencing): a number that grows
-- by one at every takeover by another holder, never at a renewal. Every write the holder's jobs
-- make checks it in the same transaction, so a holder that was paused past its lease's end and
-- wakes up after a takeover writes nothing. The row is kept when the lease is released (its
-- expiry is set to the release), so the token never starts again from 1.
ALTER TABLE leases ADD COLUMN token INTEGER NOT NULL DEFAULT 1;
