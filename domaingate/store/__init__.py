"""The store: the repository of tenants, apps, domains and their events, over either backend
(`abc` the interfaces, `sqlite/` and `postgres/` the backends, `backends` the choice)."""
