"""ZeroMQ CURVE: an authorised client gets the events, a stranger gets nothing."""
import time

import pytest
import zmq
import zmq.auth

from wire.transport import Security, SocketFactory, generate_keys
from vidtrack.commands.demo import free_tcp_port
from base.errors import ConfigError


def _pub_sub(server: SocketFactory, client: SocketFactory, n=20):
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    pub = server.bind(zmq.PUB, endpoint)
    sub = client.connect(zmq.SUB, endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    got = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(got) < 3:
        pub.send_multipart([b"s", b"hello"])
        if sub.poll(50):
            got.append(sub.recv_multipart())
    return got


def test_curve_authorised_client_receives(tmp_path):
    keys = generate_keys(tmp_path / "keys")
    server, client = SocketFactory(Security(str(keys))), SocketFactory(Security(str(keys)))
    try:
        assert _pub_sub(server, client)
    finally:
        client.close()
        server.close()


def test_curve_unknown_client_is_refused(tmp_path):
    keys = generate_keys(tmp_path / "keys")
    stranger = generate_keys(tmp_path / "stranger")
    (stranger / "server.key").unlink()
    (stranger / "server.key_secret").unlink()
    # the stranger knows the server's public key but its own key is not authorised
    zmq.auth.create_certificates(stranger, "server")
    import shutil

    shutil.copy(keys / "server.key", stranger / "server.key")
    server, client = SocketFactory(Security(str(keys))), SocketFactory(Security(str(stranger)))
    try:
        assert _pub_sub(server, client) == []
    finally:
        client.close()
        server.close()


def test_plain_client_cannot_read_a_curve_socket(tmp_path):
    keys = generate_keys(tmp_path / "keys")
    server, client = SocketFactory(Security(str(keys))), SocketFactory()
    try:
        assert _pub_sub(server, client) == []
    finally:
        client.close()
        server.close()


def test_missing_keys_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="keys_dir"):
        SocketFactory(Security(str(tmp_path / "none")))
