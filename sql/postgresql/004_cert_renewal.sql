-- When each certificate's renewal becomes overdue (domaingate.renewal), as ../004_cert_renewal.sql
-- (SQLite): shown as cert_renewal_due_at, and what the certificate scan asks to find the active
-- domains the clock has made expiring, so the index moves to the new column.
ALTER TABLE domains ADD COLUMN cert_renewal_due_at double precision;
DROP INDEX domains_cert_window;
CREATE INDEX domains_cert_due ON domains (cert_renewal_due_at) WHERE status = 'active';
