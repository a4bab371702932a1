"""The baseline: a bare aiohttp handler answering from a Python set of the same names.

`python -m bench.baseline_server DB PORT`: reads the allowed hostnames from the benchmark database
with plain sqlite3, then serves GET /tls-ask (200 if the name is in the set, else 403) and /readyz.
"""

from __future__ import annotations

import sqlite3
import sys

from aiohttp import web

ALLOWED = ("verified", "active", "expiring")


def main() -> None:
    db, port = sys.argv[1], int(sys.argv[2])
    conn = sqlite3.connect(db)
    names = {
        str(row[0])
        for row in conn.execute("SELECT hostname FROM domains WHERE status IN (?, ?, ?)", ALLOWED)
    }
    conn.close()

    async def tls_ask(request: web.Request) -> web.Response:
        if request.query["domain"] in names:
            return web.Response(text="allowed\n")
        return web.Response(status=403, text="denied\n")

    async def readyz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/tls-ask", tls_ask)
    app.router.add_get("/readyz", readyz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
