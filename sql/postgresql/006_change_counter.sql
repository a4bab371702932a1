-- SQLite's 006 takes its change sequence from a counter that only goes up. PostgreSQL's already
-- does (the `domains_change_seq` sequence, 001): nothing to change here, and the two dialects keep
-- the same schema versions.
SELECT 1;
