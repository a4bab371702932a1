"""The gateway process: the ask gate and /route for Caddy, and the tenant REST API."""
