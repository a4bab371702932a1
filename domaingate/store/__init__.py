"""The store: SQLite connection, migrations and the repository of tenants, domains and events."""
