-- The reconciler's last runs, one row per job (domaingate.store.runs): when it last ran, when it
-- last succeeded, and the error of its last run (null when that run succeeded). Written only by
-- the lease holder, shown on the operator's page; the metrics hold the counts, this the times.
CREATE TABLE job_runs (
    job          TEXT PRIMARY KEY,
    last_run_at  REAL NOT NULL,
    last_ok_at   REAL,
    last_error   TEXT
);
