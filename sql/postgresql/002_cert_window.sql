-- The certificate scan asks which active domains' certificates reach the renewal window; without
-- this index that is a pass over the whole table at every scan.
CREATE INDEX domains_cert_window ON domains (cert_expires_at) WHERE status = 'active';
