"""ZeroMQ sockets for the stages: endpoints, high-water marks and optional CURVE security.

Binding sockets are servers, connecting sockets clients. With CURVE on, every server socket
encrypts and only accepts clients whose public key is in ``keys_dir/authorized/``; clients
present ``keys_dir/client.key_secret`` and expect ``keys_dir/server.key``. Keys are made by
``vidtrack keys DIR`` (:func:`generate_keys`).
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from base.errors import ConfigError
from base.settings import setting

log = logging.getLogger(__name__)
KEY_FILES = ("server.key_secret", "client.key_secret")  # what SocketFactory loads


def _keys_problem(keys_dir: str) -> str | None:
    missing = [name for name in KEY_FILES if not (Path(keys_dir) / name).is_file()]
    return f"no CURVE keys there (missing {', '.join(missing)}; make them with `vidtrack keys DIR`)" if missing else None


@dataclass
class TransportConfig:
    """The ``[transport]`` table: how stages reach each other."""

    kind: str = setting("ipc", choices=("ipc", "tcp"))  # "ipc" (one machine) or "tcp"
    host: str = setting("127.0.0.1", non_empty=True)
    base_port: int = setting(5550, minimum=1, maximum=65535)  # tcp: detections here, frames of source i on + 1 + i
    allow_remote: bool = False  # bind beyond loopback only when true
    hwm: int = setting(4, minimum=1)  # frames queued per socket
    shared_memory: bool = True  # ipc + raw frames: pixels go through a shared-memory ring, not the socket


@dataclass(frozen=True)
class Security:
    """CURVE settings (the ``[security]`` table); ``keys_dir`` None means plain
    (unauthenticated) sockets."""

    keys_dir: str | None = setting(None, check=_keys_problem)

    @property
    def enabled(self) -> bool:
        return self.keys_dir is not None


def generate_keys(keys_dir: str | Path) -> Path:
    """Create a server and a client key pair under ``keys_dir`` and authorise the client."""
    keys_dir = Path(keys_dir)
    (keys_dir / "authorized").mkdir(parents=True, exist_ok=True)
    keys_dir.chmod(0o700)
    umask = os.umask(0o077)  # pyzmq writes with the umask's mode: 0644 (world-readable) by default
    try:
        _, server_secret = zmq.auth.create_certificates(keys_dir, "server")
        public, client_secret = zmq.auth.create_certificates(keys_dir, "client")
    finally:
        os.umask(umask)
    for secret in (server_secret, client_secret):
        Path(secret).chmod(0o600)
    shutil.copy(public, keys_dir / "authorized" / "client.key")
    return keys_dir


class SocketFactory:
    """Makes configured sockets on one context; one per process."""

    def __init__(self, security: Security = Security(), context: zmq.Context | None = None):
        self.context = context or zmq.Context()
        self.security = security
        self._auth: ThreadAuthenticator | None = None
        if security.enabled:
            self._load_keys(Path(security.keys_dir))

    def _load_keys(self, keys_dir: Path) -> None:
        try:
            self.server_public, self.server_secret = zmq.auth.load_certificate(keys_dir / "server.key_secret")
            self.client_public, self.client_secret = zmq.auth.load_certificate(keys_dir / "client.key_secret")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"security.keys_dir: cannot load CURVE keys from {keys_dir}: {exc}") from None
        self.authorized_dir = keys_dir / "authorized"

    def _start_auth(self) -> None:
        if self._auth is None:
            self._auth = ThreadAuthenticator(self.context)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(self.authorized_dir))

    def bind(self, kind: int, endpoint: str, hwm: int | None = None) -> zmq.Socket:
        sock = self.context.socket(kind)
        self._common(sock, hwm)
        if self.security.enabled and endpoint.startswith("tcp://"):
            self._start_auth()
            sock.curve_secretkey = self.server_secret
            sock.curve_publickey = self.server_public
            sock.curve_server = True
        sock.bind(endpoint)
        return sock

    def connect(self, kind: int, endpoints, hwm: int | None = None) -> zmq.Socket:
        sock = self.context.socket(kind)
        self._common(sock, hwm)
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if self.security.enabled and any(e.startswith("tcp://") for e in endpoints):
            sock.curve_secretkey = self.client_secret
            sock.curve_publickey = self.client_public
            sock.curve_serverkey = self.server_public
        for endpoint in endpoints:
            sock.connect(endpoint)
        return sock

    @staticmethod
    def _common(sock: zmq.Socket, hwm: int | None) -> None:
        sock.linger = 1000
        if hwm is not None:
            sock.sndhwm = hwm
            sock.rcvhwm = hwm

    def close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self.context.destroy(linger=500)


def check_bind_host(endpoint: str, allow_remote: bool) -> None:
    """Refuse a tcp bind on a non-loopback address unless the config allows it explicitly."""
    if not endpoint.startswith("tcp://"):
        return
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127.") and not allow_remote:
        raise ConfigError(
            f"refusing to bind {endpoint}: not a loopback address; set transport.allow_remote = true "
            "(and preferably security.keys_dir for CURVE) to listen beyond this machine"
        )
