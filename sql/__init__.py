"""Schema migrations, applied in file-name order: SQLite's here (tracked with PRAGMA
user_version), PostgreSQL's in postgresql/ (tracked in its schema_migrations table)."""
