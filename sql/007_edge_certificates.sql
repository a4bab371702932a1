-- Every edge's certificates (reconciler.certificates.report): each edge's reconciler scans its own
-- Caddy storage and reports what it holds, so the lease holder plans from the union of them all
-- rather than from its own storage alone. Rows are keyed by the storage, named by the identity file
-- its first scanner wrote in it: edges that mount one shared storage report it once.

-- A storage and its last complete scan (a storage not scanned for EDGE_STALE_AFTER stops counting).
CREATE TABLE cert_storages (
    id          TEXT PRIMARY KEY,
    scanned_at  REAL NOT NULL,
    scanned_by  TEXT NOT NULL
);

-- Each edge (EDGE_NAME), the storage it mounts, and when its reconciler last said so.
CREATE TABLE edges (
    name     TEXT PRIMARY KEY,
    storage  TEXT NOT NULL,
    seen_at  REAL NOT NULL
);

-- The latest certificate a storage holds per name. `unknown` = 1: the scan could not judge the
-- name (a file unreadable, or caught half-written), and the plan leaves such a domain alone.
CREATE TABLE edge_certificates (
    storage       TEXT NOT NULL,
    hostname      TEXT NOT NULL,
    unknown       INTEGER NOT NULL DEFAULT 0,
    issuer        TEXT,
    issuer_key    TEXT,
    not_before    REAL,
    not_after     REAL,
    window_start  REAL,
    window_end    REAL,
    seen_at       REAL NOT NULL,
    PRIMARY KEY (storage, hostname)
);
CREATE INDEX edge_certificates_hostname ON edge_certificates (hostname);

-- A storage's word that it holds no certificate of a removed domain any more: the domain counts as
-- cleaned once every storage still reporting has said so.
CREATE TABLE edge_cleanups (
    storage     TEXT NOT NULL,
    domain_id   INTEGER NOT NULL,
    cleaned_at  REAL NOT NULL,
    PRIMARY KEY (storage, domain_id)
);
