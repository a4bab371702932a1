"""The reconciler daemon: DNS schedule, certificate scan, state moves, clean-up and webhooks."""
