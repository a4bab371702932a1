"""What the tests run against, as real processes on loopback, and how they wait for it.

One module per process: `knot` (authoritative DNS), `blackhole` (a resolver that never answers
or talks garbage), `pebble` (the ACME test CA), `caddy` (the project's Caddyfile), `domaingate`
(the gateway and reconciler daemons), `upstreams` (the apps behind Caddy); `stack` composes them
for the end-to-end suite. `wait` holds the one polling loop, `net` the loopback address and free
ports, `process` the child-process wrapper they share, `tls` the client that checks what Caddy
serves, `load` a steady handshake load with every attempt recorded, `systemd` the notify socket
that orders Caddy after the gateway's READY=1, `caddy_binaries` the Caddy versions of the matrix.
`fixtures` is the pytest plugin (loaded by tests/conftest.py) that offers the processes
to tests.
"""
