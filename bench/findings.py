"""What the profiles showed and the optimisations proposed, written into RESULTS.md.

Hand-written from the profiles and from runs on a private copy of the repository with each change
applied (`python -m bench.run --candidate /tmp/benchcopy` measures that copy against this checkout
in the same run: see the "Candidate" tables below). Nothing under gateway/ or reconciler/ is
changed by the benchmarks.
"""

FINDINGS = """\
## Findings and proposals (read with the tables below)

Profiles are py-spy (`--format raw`, summarised by `bench/profiling.py`; the raw files are in
`/tmp/domaingate-bench/*-profile.txt`). "Candidate" rows come from a private copy with
changes 1-4 applied (`--candidate`; the diff is `bench/proposals.patch`: `patch -p1 <
bench/proposals.patch` on a copy). On that copy tests/gate, reconciler, api and core pass
(437 of 438: the one that fails encodes the old poll behaviour changed by 4, see there).

1. **Gate memory and start-up** (`gateway/gate/allowlist.py`, `AllowlistSync._load`). The
   initial load does `await cursor.fetchall()` on a connection whose `row_factory` is
   `aiosqlite.Row`: ~890,000 `sqlite3.Row` objects exist at once. They cost ~1 s to build and,
   once freed, leave ~200 MB of pymalloc arenas the process keeps (RSS 458 MiB, of which the
   dict itself is ~200). Change: set `cursor.row_factory = None` and loop
   `while rows := await cursor.fetchmany(10_000)` applying each chunk (same snapshot, same
   transaction). Measured: RSS 458 → 243 MiB, start-up ~2.3 s → ~1.6 s (table "Candidate: gate
   start-up and memory"); stand-alone load of the same query: fetchall+Row 3.1 s/453 MB,
   fetchall tuples 2.1 s/412 MB, chunked tuples 2.0 s/238 MB. A further ~55 MB would go by
   storing one int per hostname (`domain_id << 8 | app_index`, apps in a small list) instead of
   the `(id, app)` tuple (185 MB measured stand-alone); not needed for the 300 MB target.

2. **Gate throughput** (`gateway/app.py`, `create_internal_app`; `gateway/timing.py`). The
   profile of the gateway under wrk is aiohttp's own HTTP path (transport write, parser,
   `_handle_request`, `UrlDispatcher.resolve`, `Response` building); the gate's own code
   (`tls_ask`, `gate_key`, `Allowlist.__contains__`) is ~5%. What separates it from the bare
   handler is the internal app's `timing_middleware`: one more coroutine layer, aiohttp's
   `_fix_request_current_app` wrapper (added only when an app has middlewares),
   `match_info.route.resource.canonical`, and `latency.labels(listener, name).observe()` per
   request (`labels()` takes a lock and builds a key: 2.2 µs with observe, 1.1 µs with a
   pre-bound child). Same-run A/B, 3 x 5 s each, ratio to the bare baseline: this checkout
   0.69-0.70, internal app without any middleware 0.88-0.91, gc.freeze() after the load 0.75
   (no effect beyond noise). Change: no middleware on the internal app; `tls_ask` and `route` time
   themselves into children bound once in `Metrics` (`ask_latency`, `route_latency`, same
   `listener="internal"`, `route="/tls-ask"|"/route"` labels, so /metrics and the tests are
   unchanged; /healthz, /readyz, /metrics on the internal listener lose their latency series).
   Measured 0.79-0.83 in A/B runs, 0.89 (p99 1.01 x) in the final run against 0.74 for this
   checkout (table "Candidate: gate throughput"). The rest of the gap to 0.9 is the
   two prometheus_client calls per request (each takes a threading lock: counter inc 0.47 µs,
   histogram observe ~1 µs): plain-int counters and a bisect-into-list histogram kept by the
   event loop and exported by a custom collector at scrape time would reach the "no
   middleware" figure (~0.88-0.9); not implemented here.

3. **Certificate rescan** (`reconciler/certs.py`, `_crt_files` and `CertScanner._fact`). An
   unchanged rescan of 100,000 certificates takes 2-3 s (misses 2 s): the profile is `Path.stat`
   55% (called twice per file: `path.is_file()` in `_crt_files`, then `path.stat()` in `_fact`)
   and pathlib object construction/`__str__`/`__fspath__` ~35%. The floor (scandir + one
   `os.stat` per file) is 0.55 s. Change: `_crt_files` yields `f"{entry.path}/{name}.crt"` (a
   str) without `is_file()`; `_fact` does one `os.stat(path)`: `FileNotFoundError` → skip
   silently (what `is_file()` False did), other `OSError` → warn as before, `not S_ISREG` →
   skip; the cache is keyed by the str; a `Path` is built only for a file that is parsed
   (`CertFact.path` unchanged). Measured: rescan 2.0-3.1 s → 0.72 s, first scan ~8-11 s →
   ~4-6 s (table "5. Certificate scan", candidate rows).

4. **Reconciler cadence** (`reconciler/daemon.py`, `Reconciler.start`: the `dns` job every
   `min(1.0, …)` s; `DnsSchedule.poll` starts at most `2 x check_concurrency - in_flight`).
   With the defaults that is a hard ceiling of 100 checks/s, whatever DNS does: measured exactly
   100/s. 10,000 due domains take 100 s, 100,000 take 17 min. Proposal, on the candidate copy:
   `DnsSchedule.poll` runs under an `asyncio.Lock` (two polls must not select the same rows) and
   records whether it filled its room; `_finished` then starts one top-up `poll()` task as soon
   as in-flight drops to `check_concurrency`, and `close()` stops topping up first. With the
   daemon's own 1 s cadence the candidate ran 10,000 domains at 208 checks/s in the final run
   (this checkout: 100/s; ~155/s on 3,000 in an earlier run). Polling every 0.05 s gives
   ~190-200/s, which is the CPU bound of fix 5. One test encodes the old behaviour and would change:
   `tests/reconciler/test_schedule.py::test_checks_run_at_most_check_concurrency_at_once`
   expects the last 4 of 10 domains to wait for the next `run_due()`; topped up, they start as
   soon as the first checks finish.

5. **Reconciler CPU** (`reconciler/schedule.py` `check_one` → `gateway/store/domains.py`
   `apply_check`). With the cadence lifted, the pass is CPU-bound in one Python process: the
   DNS side (dnspython builds and parses every message, and `udp_with_fallback` opens a socket
   per query: `socket.__init__`, selector register/unregister, transport setup all show in the
   profile) runs at ~400 domains/s alone, the write path alone (canned DNS answers) at ~730/s:
   one write transaction per check (BEGIN IMMEDIATE, UPDATE, for a state move UPDATE + event +
   outbox inserts, a SELECT … JOIN to re-read the row, COMMIT with FULL sync ~0.24 ms), each
   statement a hop to aiosqlite's thread (42% of the profile's samples are in
   `_connection_worker_thread`). Together ~190/s, 0.5 x the bare client. Proposal: apply
   finished checks in batches (one `db.write()` per batch of up to ~50 results or every
   ~50 ms, rows still guarded by `WHERE id = ? AND status = ?`), and skip the re-read when no
   state move happened; the DNS side already runs at 0.95-1.0 x the bare client (bench 4,
   `DnsChecker.check`). Not implemented: the estimate is from the canned-answer row.

Gate under a reconciler pass: the results are not consistent. A trial run with knot unpinned
gave 0.66 x idle. A second trial with knot pinned to core 0 (with wrk and the reconciler) gave
0.84 x, the gateway at 92% of its core. The final run, set up the same way, gave 0.64 x with the
gateway at 98% of its core, so there the gate itself was doing less per CPU-second. Every
verification bumps `data_version` and `seq`, but the profile was not taken under this load, so
the cause is unknown. Other engineers' tests were also running (load rose to ~1.1). This needs
a py-spy capture of the gateway during a pass before anything is concluded.

Targets this checkout misses, in short: gate throughput/p99 (fix 2, partly), memory (fix 1),
certificate rescan (fix 3), the schedule's rate (fixes 4-5; `DnsChecker.check` itself meets
0.7) and gate under a reconciler pass (open, see above). Start-up, freshness and p99 meet the
targets as they are.
"""
