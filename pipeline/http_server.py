"""The supervisor's HTTP port: ``GET /metrics`` (Prometheus text format) and ``GET /healthz``
(200 with a small JSON while every stage is up, 503 otherwise), on threads of its own."""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from base.errors import ConfigError

log = logging.getLogger(__name__)


def parse_endpoint(endpoint: str) -> tuple[str, int] | None:
    """(host, port) of ``HOST:PORT``; None for "" or port 0 (metrics off)."""
    if not endpoint:
        return None
    host, colon, port = endpoint.rpartition(":")
    if not colon or not port.isdigit():
        raise ConfigError(f"metrics.endpoint: expected HOST:PORT, got {endpoint!r}")
    return (host.strip("[]") or "127.0.0.1", int(port)) if int(port) else None


class MetricsServer:
    """Serves ``registry`` and ``health()`` (-> {"status": "ok" | ..., ...}) on ``address``."""

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, health: Callable[[], dict]):
        handler = type("Handler", (_Handler,), {"registry": registry, "health": staticmethod(health)})
        try:
            self._server = ThreadingHTTPServer(address, handler)
        except OSError as exc:
            raise ConfigError(f"metrics.endpoint: cannot listen on {address[0]}:{address[1]}: {exc.strerror}") from None
        self._server.daemon_threads = True
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="metrics-http", daemon=True)

    def start(self) -> "MetricsServer":
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics, health on /healthz", *self.address)
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2.0)


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    health: Callable[[], dict]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.registry))
        elif path == "/healthz":
            health = self.health()
            body = json.dumps(health, separators=(",", ":")).encode()
            self._send(200 if health.get("status") == "ok" else 503, "application/json", body)
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # noqa: A002 - scrapes are not worth a log line each
        log.debug("metrics http: " + format, *args)
