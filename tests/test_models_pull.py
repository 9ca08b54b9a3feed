"""``vidtrack models pull``: real HTTP downloads from a local server (127.0.0.1 only):
resume after a dropped connection, resume of a left-over .part file, checksum failure,
conversion to .keras and lookup by name."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from conftest import require
from vidtrack import registry
from vidtrack.commands.models import pull
from base.errors import VidtrackError

BODY = "yolo-fastest-1.1-body"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        srv = self.server
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        srv.requests.append((name, rng))
        data = srv.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and srv.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = srv.cut_once.pop(name, None)
        if cut is not None:  # drop the connection partway, once
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.cut_once, srv.honour_range = {}, [], {}, True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _serve_body(server, shared_data):
    d = shared_data / "yolo-fastest" / "yolo-fastest-1.1_body"
    for f in registry.get(BODY).files:
        server.files[f.filename] = require(d / f.filename).read_bytes()
    return registry.get(BODY).weights.filename


def test_pull_resumes_after_dropped_connection_and_converts(server, shared_data, tmp_path, capsys):
    from detector.runtime import Detector
    from vidtrack.cli import main

    weights = _serve_body(server, shared_data)
    server.cut_once[weights] = 300_000
    rc = main(["models", "pull", BODY, "--url", server.url, "--dir", str(tmp_path)])
    assert rc == 0
    got = [r for n, r in server.requests if n == weights]
    assert got == [None, "bytes=300000-"]  # second request resumed where the connection dropped
    raw = tmp_path / "downloads" / BODY / weights
    assert hashlib.sha256(raw.read_bytes()).hexdigest() == registry.get(BODY).weights.sha256
    assert not raw.with_name(raw.name + ".part").exists()
    path = registry.resolve_model(BODY, tmp_path)
    assert path == tmp_path / f"{BODY}.keras"
    assert Detector.load(path).input_size == (320, 320)
    main(["models", "list", "--dir", str(tmp_path)])
    listing = capsys.readouterr().out
    assert re.search(rf"{BODY}\s+pulled", listing) and "checksum unknown: yolov3-tiny.weights" in listing


def test_pull_resumes_a_leftover_part_file(server, shared_data, tmp_path):
    weights = _serve_body(server, shared_data)
    part = tmp_path / "downloads" / BODY / f"{weights}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(server.files[weights][:123_456])
    pull(BODY, server.url, tmp_path)
    assert (weights, "bytes=123456-") in server.requests
    assert (tmp_path / f"{BODY}.keras").is_file()


def test_server_ignoring_range_restarts_cleanly(server, shared_data, tmp_path):
    weights = _serve_body(server, shared_data)
    server.honour_range = False
    server.cut_once[weights] = 200_000
    pull(BODY, server.url, tmp_path)
    raw = tmp_path / "downloads" / BODY / weights
    assert raw.read_bytes() == server.files[weights]


def test_checksum_mismatch_removes_the_file(server, shared_data, tmp_path):
    weights = _serve_body(server, shared_data)
    data = bytearray(server.files[weights])
    data[5000] ^= 0xFF
    server.files[weights] = bytes(data)
    with pytest.raises(VidtrackError, match=f"checksum mismatch for {re.escape(server.url)}/{weights}.*removed"):
        pull(BODY, server.url, tmp_path)
    d = tmp_path / "downloads" / BODY
    assert not (d / weights).exists() and not (d / f"{weights}.part").exists()
    assert not (tmp_path / f"{BODY}.keras").exists()


def test_unknown_checksum_warns_and_missing_file_fails(server, tmp_path, monkeypatch, caplog):
    from detector.darknet import parse_cfg, plan, write_random_weights
    from test_darknet import TINY_CFG

    (tmp_path / "srv").mkdir()
    write_random_weights(tmp_path / "srv" / "tiny.weights", plan(parse_cfg(TINY_CFG)), seed=1)
    server.files = {"tiny.cfg": TINY_CFG.encode(), "tiny.weights": (tmp_path / "srv" / "tiny.weights").read_bytes(),
                    "tiny.names": b"a\nb\n"}
    base = "https://example.invalid/never-contacted"  # official URLs are replaced by --url
    entry = registry.KnownModel("tiny-test", "test", registry.ModelFile(f"{base}/tiny.cfg", None),
                                registry.ModelFile(f"{base}/tiny.weights", None),
                                registry.ModelFile(f"{base}/tiny.names", None))
    monkeypatch.setitem(registry.MODELS, "tiny-test", entry)
    with caplog.at_level(logging.WARNING, logger="vidtrack.models"):
        out = pull("tiny-test", server.url, tmp_path / "models")
    assert out.is_file() and "no known SHA-256 for tiny.weights" in caplog.text
    del server.files["tiny.names"]
    with pytest.raises(VidtrackError, match="HTTP 404"):
        pull("tiny-test", server.url, tmp_path / "other")
    with pytest.raises(VidtrackError, match="unknown model 'nope'"):
        pull("nope", server.url, tmp_path)
