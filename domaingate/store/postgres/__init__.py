"""The PostgreSQL backend: what `open_database()` opens for a `postgresql://` URL."""
