"""The PostgreSQL backend: what `Database.open()` loads for a `postgresql://` URL."""
