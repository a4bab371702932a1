-- When each certificate's renewal becomes overdue (domaingate.renewal): by its own lifetime, the
-- ARI window its CA suggests, or EXPIRING_DAYS. Shown as cert_renewal_due_at, and what the
-- certificate scan asks to find the active domains the clock has made expiring; that question
-- no longer reads cert_expires_at, so its index moves to the new column.
ALTER TABLE domains ADD COLUMN cert_renewal_due_at REAL;
DROP INDEX domains_cert_window;
CREATE INDEX domains_cert_due ON domains (cert_renewal_due_at) WHERE status = 'active';
