"""The claim rules' numbers and reasons: who may attach a name, and for how long a name stays held.

Several tenants may claim one name; only a proven claim (verified, active, expiring) holds it. The
removal of a proven claim keeps the name from other tenants for the cool-down; an unproven claim
leaves nothing behind.
"""

from __future__ import annotations

COOLDOWN_SECONDS = 48 * 3600

# Attaches per tenant in a sliding hour.
ATTACH_WINDOW_SECONDS = 3600
ATTACH_LIMIT_PER_TENANT = 30

# Why a claim could not be verified although its DNS was right (`last_check_error.code`, and the
# reason of its move to failed).
HOSTNAME_TAKEN = "hostname_taken"
HOSTNAME_COOLDOWN = "hostname_cooldown"
