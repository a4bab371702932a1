-- The reconciler's last runs, one row per job, as ../005_job_runs.sql (SQLite): written only by
-- the lease holder, shown on the operator's page.
CREATE TABLE job_runs (
    job          text PRIMARY KEY,
    last_run_at  double precision NOT NULL,
    last_ok_at   double precision,
    last_error   text
);
