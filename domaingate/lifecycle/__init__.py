"""The domain lifecycle: pure decisions that turn what was observed into plans the store writes.

- `dns`: what a DNS check means for a domain (`plan_check`), for the API's "verify now" and the
  reconciler's scheduled checks alike;
- `certificates`: what the certificates Caddy stores mean for live domains (`plan_certs`), with
  the mass-loss guard;
- `claims`: who may attach a name, who wins the race to verify it, the cool-down;
- `limits`: the rate limits' numbers and their sliding-window rule;
- `ownership`: the verification method and the TXT token;
- `moves`: the one `Move` type the planners produce and the store writes.

No I/O here, and nothing from the store (an import-linter contract): the store reads facts and
writes plans, each move a compare-and-set on its source status.
"""
