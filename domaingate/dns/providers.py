"""DNS hosting provider detection from a zone's NS host names (best effort, never fails a check).

The table is data: a provider is recognised when one of its glob patterns matches a name server's
host name (lower-case, no trailing dot). Add a row to teach it another provider.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from fnmatch import fnmatchcase

PROVIDERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Cloudflare", ("*.cloudflare.com",)),
    ("GoDaddy", ("*.domaincontrol.com",)),
    ("Namecheap", ("*.registrar-servers.com",)),
    # ns-123.awsdns-45.com / .net / .org / .co.uk
    ("Amazon Route 53", ("*.awsdns-*",)),
    ("DigitalOcean", ("*.digitalocean.com",)),
    ("Google Cloud DNS", ("ns-cloud-*.googledomains.com", "*.googledomains.com")),
    ("Azure DNS", ("*.azure-dns.com", "*.azure-dns.net", "*.azure-dns.org", "*.azure-dns.info")),
    ("Hetzner", ("*.ns.hetzner.com", "*.ns.hetzner.de", "*.first-ns.de")),
    ("Gandi", ("*.gandi.net",)),
    ("OVHcloud", ("*.ovh.net", "*.ovh.ca")),
    ("Vercel", ("*.vercel-dns.com",)),
)


def provider_of(nameserver: str) -> str | None:
    """The provider one name server host name belongs to, or None."""
    host = nameserver.strip().lower().rstrip(".")
    for provider, patterns in PROVIDERS:
        if any(fnmatchcase(host, pattern) for pattern in patterns):
            return provider
    return None


def detect(nameservers: Iterable[str]) -> str | None:
    """The provider most of `nameservers` belong to; ties go to the table's order."""
    counts = Counter(p for p in (provider_of(ns) for ns in nameservers) if p is not None)
    if not counts:
        return None
    order = {name: index for index, (name, _) in enumerate(PROVIDERS)}
    return min(counts, key=lambda name: (-counts[name], order[name]))
