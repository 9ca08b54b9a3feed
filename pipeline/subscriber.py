"""A background subscriber that collects events from a running service (used by the demo and tests)."""
from __future__ import annotations

import json
import threading

import zmq

from base.errors import ConfigError
from wire.transport import Security, SocketFactory


class EventCollector(threading.Thread):
    """Subscribes to ``endpoint`` and appends every event to ``events`` until :meth:`close`.

    ``on_event`` (optional) is called for each event as it arrives. Over tcp it presents the
    subscriber key of ``security.keys_dir`` (a service's run: ``Service.endpoints.security``).
    """

    def __init__(self, endpoint: str, security: Security = Security(), on_event=None):
        super().__init__(daemon=True, name="event-collector")
        self.endpoint = endpoint
        self.events: list[dict] = []
        self.on_event = on_event
        self._closing = threading.Event()
        if endpoint.startswith("tcp://") and not security.enabled:  # it would silently receive nothing
            raise ConfigError(f"{endpoint}: tcp events are CURVE-encrypted; pass the run's keys "
                              "(EventCollector(endpoint, service.endpoints.security))")
        self._factory = SocketFactory(security, role="subscriber")
        self._sock = self._factory.connect(zmq.SUB, endpoint)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")

    def run(self) -> None:
        try:
            while not self._closing.is_set():
                if self._sock.poll(100):
                    _topic, payload = self._sock.recv_multipart()
                    event = json.loads(payload)
                    self.events.append(event)
                    if self.on_event is not None:
                        self.on_event(event)
        finally:
            self._factory.close()

    def close(self) -> None:
        self._closing.set()
        self.join(5)
