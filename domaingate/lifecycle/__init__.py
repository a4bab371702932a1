"""The domain lifecycle: pure planners that turn what was observed into state moves.

- `dns`: what a DNS check means for a domain (`plan_check`), for the API's "verify now" and the
  reconciler's scheduled checks alike;
- `certificates`: what the certificates Caddy stores mean for live domains (`plan_certs`), with
  the mass-loss guard;
- `moves`: the one `Move` type both planners produce and the store writes.

No I/O here: the store applies a plan, each move a compare-and-set on its source status.
"""

from domaingate.lifecycle.certificates import (
    CertChange,
    MassLoss,
    certified,
    mass_loss,
    plan_certs,
)
from domaingate.lifecycle.dns import CheckPlan, Policy, plan_check
from domaingate.lifecycle.moves import Move

__all__ = [
    "CertChange",
    "CheckPlan",
    "MassLoss",
    "Move",
    "Policy",
    "certified",
    "mass_loss",
    "plan_certs",
    "plan_check",
]
