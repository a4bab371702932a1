"""The upstream apps behind Caddy: one HTTP server per app on a unix socket of its own.

DOMAINGATE_UPSTREAM_TEMPLATE is `unix/<directory>/{app}.sock`, which Caddy's reverse_proxy dials
as a unix socket. That gives every app its own upstream with no host names that would need
/etc/hosts or a resolver, and no apps named after port numbers. Each answers any GET with JSON
naming the app, the Host it was asked for, the path and the X-Domaingate-App header it got.
"""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from pathlib import Path
from typing import Any


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    app_name = ""


class _UpstreamHandler(http.server.BaseHTTPRequestHandler):
    server: _UnixHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "upstream": self.server.app_name,
                "host": self.headers.get("Host"),
                "path": self.path,
                "app_header": self.headers.get("X-Domaingate-App"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Upstreams:
    """One HTTP server per app on `<directory>/<app>.sock`, answering with the app's name."""

    def __init__(self, directory: Path, apps: tuple[str, ...]) -> None:
        self.directory = directory
        self.apps = apps
        self._servers: list[tuple[_UnixHTTPServer, threading.Thread]] = []

    @property
    def template(self) -> str:
        return f"unix/{self.directory}/{{app}}.sock"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for app in self.apps:
            server = _UnixHTTPServer(str(self.directory / f"{app}.sock"), _UpstreamHandler)
            server.app_name = app
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
            thread.start()
            self._servers.append((server, thread))

    def stop(self) -> None:
        while self._servers:
            server, thread = self._servers.pop()
            server.shutdown()
            server.server_close()
            thread.join()
