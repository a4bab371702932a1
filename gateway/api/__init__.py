"""The tenant REST API: an aiohttp sub-application mounted at `PREFIX`, its one spelling.

Its handlers read the gateway's shared resources through `request.config_dict` (the API
application's keys, seen from the sub-application); the middlewares (errors, authentication,
timing) are the API application's and apply here too.
"""

from __future__ import annotations

PREFIX = "/api/v1"
