-- Tenants, domains and their state-move log. Times are Unix epoch seconds (REAL, UTC).

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    -- SHA-256 of the API token: the token itself is shown once and never stored.
    token_hash  BLOB    NOT NULL UNIQUE,
    created_at  REAL    NOT NULL,
    revoked_at  REAL
);

CREATE TABLE domains (
    id                  INTEGER PRIMARY KEY,
    hostname            TEXT    NOT NULL,
    tenant_id           INTEGER NOT NULL REFERENCES tenants (id),
    app                 TEXT    NOT NULL,
    status              TEXT    NOT NULL
        CHECK (status IN ('pending', 'verified', 'active', 'expiring', 'failed', 'removed')),
    kind                TEXT    NOT NULL CHECK (kind IN ('subdomain', 'apex')),
    method              TEXT    NOT NULL CHECK (method IN ('cname', 'txt')),
    txt_token           TEXT    NOT NULL,
    created_at          REAL    NOT NULL,
    updated_at          REAL    NOT NULL,
    verified_at         REAL,
    last_checked_at     REAL,
    next_check_at       REAL,
    last_check_code     TEXT,
    last_check_message  TEXT,
    failure_count       INTEGER NOT NULL DEFAULT 0,
    -- When the current run of failing checks began: the retry budget (pending) and the drift
    -- grace (live domains) are measured from here.
    failing_since       REAL,
    dns_provider        TEXT,
    cert_expires_at     REAL,
    cert_issuer         TEXT,
    removed_at          REAL,
    certs_cleaned_at    REAL,
    -- Change sequence: bumped by the triggers below whenever what the gate needs changes, so the
    -- gate reads only rows with seq above the last one it saw.
    seq                 INTEGER NOT NULL DEFAULT 0
);

-- One live claim per hostname; removed rows stay for audit and the cool-down.
CREATE UNIQUE INDEX domains_live_hostname ON domains (hostname) WHERE status != 'removed';
CREATE INDEX domains_hostname ON domains (hostname, removed_at);
CREATE INDEX domains_tenant ON domains (tenant_id, id);
CREATE INDEX domains_seq ON domains (seq);
CREATE INDEX domains_due ON domains (next_check_at) WHERE status != 'removed';

CREATE TRIGGER domains_seq_on_insert AFTER INSERT ON domains
BEGIN
    UPDATE domains SET seq = (SELECT max(seq) FROM domains) + 1 WHERE id = NEW.id;
END;

CREATE TRIGGER domains_seq_on_update AFTER UPDATE OF status, app, hostname ON domains
BEGIN
    UPDATE domains SET seq = (SELECT max(seq) FROM domains) + 1 WHERE id = NEW.id;
END;

CREATE TABLE domain_events (
    id           INTEGER PRIMARY KEY,
    event_id     TEXT    NOT NULL UNIQUE,
    domain_id    INTEGER NOT NULL REFERENCES domains (id),
    type         TEXT    NOT NULL,
    from_status  TEXT,
    to_status    TEXT    NOT NULL,
    reason       TEXT,
    message      TEXT,
    created_at   REAL    NOT NULL
);
CREATE INDEX domain_events_domain ON domain_events (domain_id, id);

-- Webhook outbox: a row per event to deliver, written in the same transaction as the event.
CREATE TABLE webhook_outbox (
    event_id         TEXT    PRIMARY KEY REFERENCES domain_events (event_id),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL    NOT NULL,
    delivered_at     REAL,
    last_error       TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE delivered_at IS NULL;

-- Verification requests, for the per-domain and per-tenant rate limits.
CREATE TABLE verify_attempts (
    id         INTEGER PRIMARY KEY,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
    hostname   TEXT    NOT NULL,
    at         REAL    NOT NULL
);
CREATE INDEX verify_attempts_tenant ON verify_attempts (tenant_id, at);
CREATE INDEX verify_attempts_hostname ON verify_attempts (hostname, at);

-- Leases keep a second reconciler on the same database from doing the same work twice.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  REAL NOT NULL
);
