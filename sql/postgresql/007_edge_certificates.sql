-- Every edge's certificates, as ../007_edge_certificates.sql (SQLite).
-- Every edge's certificates (reconciler.certificates.report): each edge's reconciler scans its own
-- Caddy storage and reports what it holds, so the lease holder plans from the union of them all
-- rather than from its own storage alone. Rows are keyed by the storage, named by the identity file
-- its first scanner wrote in it: edges that mount one shared storage report it once.

-- A storage and its last complete scan (a storage not scanned for EDGE_STALE_AFTER stops counting).
CREATE TABLE cert_storages (
    id          text PRIMARY KEY,
    scanned_at  double precision NOT NULL,
    scanned_by  text NOT NULL
);

-- Each edge (EDGE_NAME), the storage it mounts, and when its reconciler last said so.
CREATE TABLE edges (
    name     text PRIMARY KEY,
    storage  text NOT NULL,
    seen_at  double precision NOT NULL
);

-- The latest certificate a storage holds per name. `unknown` = 1: the scan could not judge the
-- name (a file unreadable, or caught half-written), and the plan leaves such a domain alone.
CREATE TABLE edge_certificates (
    storage       text NOT NULL,
    hostname      text NOT NULL,
    unknown       integer NOT NULL DEFAULT 0,
    issuer        text,
    issuer_key    text,
    not_before    double precision,
    not_after     double precision,
    window_start  double precision,
    window_end    double precision,
    seen_at       double precision NOT NULL,
    PRIMARY KEY (storage, hostname)
);
CREATE INDEX edge_certificates_hostname ON edge_certificates (hostname);

-- A storage's word that it holds no certificate of a removed domain any more: the domain counts as
-- cleaned once every storage still reporting has said so.
CREATE TABLE edge_cleanups (
    storage     text NOT NULL,
    domain_id   bigint NOT NULL,
    cleaned_at  double precision NOT NULL,
    PRIMARY KEY (storage, domain_id)
);
