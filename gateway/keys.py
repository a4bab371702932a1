"""Typed application keys for the resources the gateway's two applications share."""

from __future__ import annotations

from aiohttp import web

from domaingate.dns.checker import DnsChecker
from domaingate.settings import Settings
from domaingate.store.abc import Database
from domaingate.times import Clock
from gateway.caps import Caps
from gateway.gate.allowlist import Allowlist
from gateway.gate.context import Gate
from gateway.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
DB = web.AppKey("db", Database)
ALLOWLIST = web.AppKey("allowlist", Allowlist)
GATE = web.AppKey("gate", Gate)
CHECKER = web.AppKey("checker", DnsChecker)
METRICS = web.AppKey("metrics", Metrics)
CAPS = web.AppKey("caps", Caps)
