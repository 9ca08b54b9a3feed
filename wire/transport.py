"""ZeroMQ sockets for the stages: endpoints, size limits, high-water marks and CURVE security.

Binding sockets are servers, connecting sockets clients. Every tcp socket uses CURVE (a
plain tcp bind is refused): servers encrypt with ``keys_dir/server.key_secret`` and accept
only authorised client keys, per socket through a ZAP domain:

- :data:`STAGES` sockets (frames, detections): the keys in ``keys_dir/authorized/`` (the
  stages' ``client.key``);
- :data:`SUBSCRIBERS` sockets (track events): the keys in ``keys_dir/subscribers/`` (the
  ``subscriber.key`` of ``vidtrack keys``), so a subscriber's key can read the events and
  nothing else.

Clients present ``keys_dir/<role>.key_secret`` (role ``client`` or ``subscriber``) and check
the server against ``keys_dir/server.key``. Keys are made by ``vidtrack keys DIR``
(:func:`generate_keys`); a run without ``security.keys_dir`` on loopback makes its own
(:func:`ephemeral_security`). ipc sockets rely on their folder's mode (0700) instead.
"""
from __future__ import annotations

import ipaddress
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
KEY_FILES = ("server.key_secret", "client.key_secret")  # what the stages load
STAGES = "vidtrack-stages"  # ZAP domain of the frame and detections sockets
SUBSCRIBERS = "vidtrack-events"  # ZAP domain of the events socket
_AUTHORISED = {STAGES: "authorized", SUBSCRIBERS: "subscribers"}  # domain -> folder of its client keys


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
    queue_mb: float = setting(64.0, above=0.0)  # ... and at most this many MB of pixels (large frames: fewer)
    shared_memory: bool = True  # ipc + raw frames: pixels go through a shared-memory ring, not the socket


def frame_queue_hwm(hwm: int, frame_bytes: int, queue_bytes: int) -> int:
    """The high-water mark of a socket carrying frames of ``frame_bytes`` each (0: the pixels
    travel elsewhere, e.g. a shared-memory ring): ``hwm``, lowered so that the queue holds at
    most ``queue_bytes`` of them, at least 1."""
    if frame_bytes <= 0:
        return hwm
    return max(1, min(hwm, queue_bytes // frame_bytes))


@dataclass(frozen=True)
class Security:
    """CURVE settings (the ``[security]`` table). ``keys_dir`` None: no keys of the user's;
    the service then makes keys for the run when it uses tcp on loopback, and refuses tcp
    beyond loopback."""

    keys_dir: str | None = setting(None, check=_keys_problem)

    @property
    def enabled(self) -> bool:
        return self.keys_dir is not None


def _write_pair(keys_dir: Path, name: str, authorised_in: str) -> None:
    public, secret = zmq.auth.create_certificates(keys_dir, name)
    Path(secret).chmod(0o600)
    shutil.copy(public, keys_dir / authorised_in / f"{name}.key")


def generate_keys(keys_dir: str | Path) -> Path:
    """Create the server, client (stages) and subscriber key pairs under ``keys_dir`` (secret
    keys 0600 in a 0700 folder); the client key is authorised for the stages' sockets, the
    subscriber key for the events socket only."""
    keys_dir = Path(keys_dir)
    for folder in _AUTHORISED.values():
        (keys_dir / folder).mkdir(parents=True, exist_ok=True)
    keys_dir.chmod(0o700)
    umask = os.umask(0o077)  # pyzmq writes with the umask's mode: 0644 (world-readable) by default
    try:
        _, server_secret = zmq.auth.create_certificates(keys_dir, "server")
        Path(server_secret).chmod(0o600)
        _write_pair(keys_dir, "client", _AUTHORISED[STAGES])
        _write_pair(keys_dir, "subscriber", _AUTHORISED[SUBSCRIBERS])
    finally:
        os.umask(umask)
    return keys_dir


def ephemeral_security(run_dir: str | Path) -> Security:
    """Keys made for one run in ``run_dir/keys`` (``run_dir`` private: 0700), for loopback tcp
    without ``security.keys_dir``; they go when the run's folder is removed."""
    return Security(str(generate_keys(Path(run_dir) / "keys")))


class AuthorisedKeys:
    """The client keys of one ZAP domain (public keys in a folder, loaded once), for pyzmq's
    authenticator; counts the refused clients (``refused``) and logs the first few."""

    def __init__(self, domain: str, folder: Path):
        self.domain = domain
        self.allowed = set(zmq.auth.load_certificates(str(folder))) if folder.is_dir() else set()
        self.refused = 0
        if not self.allowed:
            log.warning("%s: no client keys: no one can connect to the %s sockets", folder, domain)

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.allowed:
            return True
        self.refused += 1
        if self.refused <= 3:
            log.warning("refused a client with an unauthorised CURVE key on a %s socket", self.domain)
        return False


class SocketFactory:
    """Makes configured sockets on one context; one per process. ``role`` names the key a
    connecting socket presents: ``client`` (the stages) or ``subscriber``."""

    def __init__(self, security: Security = Security(), context: zmq.Context | None = None, role: str = "client"):
        self.context = context or zmq.Context()
        self.security = security
        self.role = role
        self._auth: ThreadAuthenticator | None = None
        self.authorised: dict[str, AuthorisedKeys] = {}  # ZAP domain -> its keys and refusals (once a server binds)
        self._keys_dir = Path(security.keys_dir) if security.enabled else None
        if self._keys_dir is not None and not self._keys_dir.is_dir():
            raise ConfigError(f"security.keys_dir: no CURVE keys folder at {self._keys_dir}")

    def _load(self, name: str) -> tuple[bytes, bytes | None]:
        try:
            return zmq.auth.load_certificate(self._keys_dir / name)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"security.keys_dir: cannot load the CURVE key {name} from {self._keys_dir}: {exc}"
                              ) from None

    def refused_clients(self) -> int:
        """Handshakes refused so far (unauthorised CURVE keys) on this factory's sockets."""
        return sum(keys.refused for keys in self.authorised.values())

    def _start_auth(self) -> None:
        if self._auth is None:
            self._auth = ThreadAuthenticator(self.context)
            self._auth.start()
            for domain, folder in _AUTHORISED.items():
                self.authorised[domain] = AuthorisedKeys(domain, self._keys_dir / folder)
                self._auth.configure_curve_callback(domain=domain, credentials_provider=self.authorised[domain])

    def bind(self, kind: int, endpoint: str, hwm: int | None = None, max_message_bytes: int | None = None,
             domain: str = STAGES) -> zmq.Socket:
        """A server socket on ``endpoint``; over tcp it takes only the clients authorised for
        ``domain`` (:data:`STAGES` or :data:`SUBSCRIBERS`), and a plain tcp bind is refused."""
        sock = self.context.socket(kind)
        try:
            self._common(sock, hwm, max_message_bytes)
            if endpoint.startswith("tcp://"):
                self._curve_server(sock, endpoint, domain)
            sock.bind(endpoint)
            bound = sock.last_endpoint.decode()
            if bound.startswith("ipc://") and not bound.startswith("ipc://@"):  # @: abstract, no file
                os.chmod(bound[len("ipc://"):], 0o600)  # the owner only, whatever the umask
        except BaseException:
            sock.close(0)
            raise
        return sock

    def _curve_server(self, sock: zmq.Socket, endpoint: str, domain: str) -> None:
        if self._keys_dir is None:
            raise ConfigError(f"security.keys_dir: refusing to bind {endpoint} without CURVE keys "
                              "(tcp sockets are always encrypted and authenticated; make keys with `vidtrack keys DIR`)")
        self._start_auth()
        sock.curve_publickey, sock.curve_secretkey = self._load("server.key_secret")
        sock.curve_server = True
        sock.zap_domain = domain.encode()

    def connect(self, kind: int, endpoints, hwm: int | None = None, max_message_bytes: int | None = None
                ) -> zmq.Socket:
        sock = self.context.socket(kind)
        self._common(sock, hwm, max_message_bytes)
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if self._keys_dir is not None and any(e.startswith("tcp://") for e in endpoints):
            sock.curve_publickey, sock.curve_secretkey = self._load(f"{self.role}.key_secret")
            sock.curve_serverkey, _ = self._load("server.key")
        for endpoint in endpoints:
            sock.connect(endpoint)
        return sock

    @staticmethod
    def _common(sock: zmq.Socket, hwm: int | None, max_message_bytes: int | None) -> None:
        sock.linger = 1000
        if hwm is not None:
            sock.sndhwm = hwm
            sock.rcvhwm = hwm
        if max_message_bytes is not None:  # per message part; a peer sending more is disconnected
            sock.maxmsgsize = max_message_bytes

    def close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self.context.destroy(linger=500)


def is_loopback(endpoint: str) -> bool:
    """Whether a tcp ``endpoint`` names a loopback address (ipc and inproc count as local)."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_host(endpoint: str, allow_remote: bool) -> None:
    """Refuse a tcp bind on a non-loopback address unless the config allows it explicitly."""
    if not is_loopback(endpoint) and not allow_remote:
        raise ConfigError(
            f"refusing to bind {endpoint}: not a loopback address; set transport.allow_remote = true "
            "(with security.keys_dir: CURVE keys shared by the hosts) to listen beyond this machine"
        )
