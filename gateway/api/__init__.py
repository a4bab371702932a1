"""The tenant REST API under /api/v1."""
