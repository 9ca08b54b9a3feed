"""Wire messages between stages (ZeroMQ multipart), validated before use.

Frame message (grabber -> detector), parts ``[header, pixels]``:
    header: JSON object ``{"v": 1, "type": "frame", "stream": str, "seq": int, "index": int,
    "ts": float, "shape": [H, W, 3], "dtype": "uint8", "encoding": "raw" | "jpeg" | "shm"}``.
    ``index`` is the capture frame number (gaps = frames dropped at the grabber), ``seq`` the
    send sequence number (gap-free per stream, used to restore order after several detectors).
    pixels: raw BGR bytes (sent zero-copy) or a JPEG; for "shm" (ipc only) the header also has
    ``"ring": str, "slot": int`` naming a slot of a shared-memory frame ring
    (:mod:`wire.frame_ring`) and the pixels part is empty.

Detections message (detector -> tracker), parts ``[header, boxes, scores, class_ids, embeddings]``:
    header: ``{"v": 1, "type": "detections", "stream", "seq", "index", "ts", "n": N, "dim": D,
    "width": W, "height": H}``; arrays are little-endian float32[N, 4], float32[N], int32[N],
    float32[N, D].

Control message (grabber -> detector -> tracker), one part:
    ``{"v": 1, "type": "stream.started", "stream", "source", "width", "height", "fps", "live",
    "frames"}``, ``{"v": 1, "type": "stream.ended", "stream", "seq": <messages sent>, "reason"}``,
    ``{"v": 1, "type": "stream.stalled", "stream", "seconds"}``.

Every decoder raises :class:`ProtocolError` on anything malformed; stages count and drop such
messages and never crash on them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np

from base.types import Detections
from wire.frame_ring import RingError
from base.types import Frame

VERSION = 1
MAX_HEADER_BYTES = 16 * 1024
MAX_STREAM_ID = 128
MAX_SIDE = 8192
MAX_DETECTIONS = 10_000
MAX_EMBEDDING_DIM = 4096
CONTROL_TYPES = ("stream.started", "stream.ended", "stream.stalled")


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the receiver drops it."""


@dataclass
class Control:
    """A stream life-cycle message; ``fields`` is the whole validated header."""

    kind: str
    stream_id: str
    fields: dict


def _json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _parse_header(raw, expected_types) -> dict:
    raw = bytes(raw)
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(raw)} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    if header.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {header.get('v')!r}")
    if header.get("type") not in expected_types:
        raise ProtocolError(f"unexpected message type {header.get('type')!r}")
    stream = header.get("stream")
    if not isinstance(stream, str) or not 0 < len(stream) <= MAX_STREAM_ID:
        raise ProtocolError("stream id must be a string of 1..128 characters")
    return header


def _int_field(header: dict, key: str, lo: int = 0, hi: int = 2**62) -> int:
    value = header.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ProtocolError(f"field {key!r} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _float_field(header: dict, key: str) -> float:
    value = header.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
        raise ProtocolError(f"field {key!r} must be a finite number, got {value!r}")
    return float(value)


def message_type(parts) -> str:
    """The ``type`` of a message's header, or raise ProtocolError."""
    if not parts:
        raise ProtocolError("empty message")
    return _parse_header(_bytes_of(parts[0]), ("frame", "detections") + CONTROL_TYPES)["type"]


def _bytes_of(part):
    return part.buffer if hasattr(part, "buffer") else part


# ---------------------------------------------------------------- frames
def encode_frame(frame: Frame, seq: int, encoding: str = "raw", jpeg_quality: int = 90,
                 ring_slot: tuple[str, int] | None = None) -> list:
    """Parts of a frame message; raw pixels are passed as a buffer (zero-copy send). With
    ``ring_slot`` = (ring name, slot) the pixels are already in shared memory ("shm")."""
    image = np.ascontiguousarray(frame.image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError("frame image must be uint8[H, W, C]")
    header = {
        "v": VERSION, "type": "frame", "stream": frame.stream_id, "seq": int(seq),
        "index": int(frame.index), "ts": float(frame.timestamp),
        "shape": list(image.shape), "dtype": "uint8", "encoding": encoding,
    }
    if ring_slot is not None:
        header.update(encoding="shm", ring=ring_slot[0], slot=int(ring_slot[1]))
        payload = b""
    elif encoding == "raw":
        payload = image
    elif encoding == "jpeg":
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        payload = buf.tobytes()
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    return [_json(header), payload]


def decode_frame(parts, rings=None) -> tuple[Frame, int]:
    """Validate a frame message and return ``(frame, seq)``; pixels are not copied for raw.

    ``rings`` (a :class:`wire.frame_ring.RingReader`) resolves "shm" frames; without it
    they are refused."""
    if len(parts) != 2:
        raise ProtocolError(f"frame message has {len(parts)} parts, expected 2")
    header = _parse_header(_bytes_of(parts[0]), ("frame",))
    seq = _int_field(header, "seq")
    index = _int_field(header, "index")
    ts = _float_field(header, "ts")
    shape = header.get("shape")
    if (not isinstance(shape, list) or len(shape) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
            or not (0 < shape[0] <= MAX_SIDE and 0 < shape[1] <= MAX_SIDE and shape[2] == 3)):
        raise ProtocolError(f"bad shape {shape!r}: expected [H, W, 3] with sides 1..{MAX_SIDE}")
    if header.get("dtype") != "uint8":
        raise ProtocolError(f"unsupported dtype {header.get('dtype')!r}")
    payload = _bytes_of(parts[1])
    encoding = header.get("encoding")
    expected = shape[0] * shape[1] * shape[2]
    if encoding == "raw":
        if len(payload) != expected:
            raise ProtocolError(f"pixel payload has {len(payload)} bytes, shape {shape} needs {expected}")
        image = np.frombuffer(payload, dtype=np.uint8).reshape(shape)
    elif encoding == "shm":
        if rings is None:
            raise ProtocolError("shared-memory frame on a socket that does not accept them")
        if len(payload) != 0:
            raise ProtocolError("shared-memory frame with a pixel payload")
        ring, slot = header.get("ring"), _int_field(header, "slot", 0, 2**31)
        if not isinstance(ring, str):
            raise ProtocolError("shared-memory frame without a ring name")
        try:
            image = rings.view(ring, slot, tuple(shape))
        except RingError as exc:
            raise ProtocolError(str(exc)) from None
    elif encoding == "jpeg":
        if len(payload) > expected + 1024 * 1024:
            raise ProtocolError("JPEG payload larger than its raw frame")
        image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        if image is None or list(image.shape) != shape:
            raise ProtocolError("JPEG payload does not decode to the declared shape")
    else:
        raise ProtocolError(f"unknown encoding {encoding!r}")
    return Frame(header["stream"], index, ts, image), seq


# ---------------------------------------------------------------- detections
@dataclass
class DetectionsMessage:
    stream_id: str
    seq: int
    index: int
    timestamp: float
    width: int
    height: int
    detections: Detections


def encode_detections(msg: DetectionsMessage) -> list:
    det = msg.detections
    header = {
        "v": VERSION, "type": "detections", "stream": msg.stream_id, "seq": int(msg.seq),
        "index": int(msg.index), "ts": float(msg.timestamp), "n": len(det),
        "dim": int(det.embeddings.shape[1]), "width": int(msg.width), "height": int(msg.height),
    }
    return [
        _json(header),
        np.ascontiguousarray(det.boxes, "<f4"),
        np.ascontiguousarray(det.scores, "<f4"),
        np.ascontiguousarray(det.class_ids, "<i4"),
        np.ascontiguousarray(det.embeddings, "<f4"),
    ]


def decode_detections(parts) -> DetectionsMessage:
    if len(parts) != 5:
        raise ProtocolError(f"detections message has {len(parts)} parts, expected 5")
    header = _parse_header(_bytes_of(parts[0]), ("detections",))
    n = _int_field(header, "n", 0, MAX_DETECTIONS)
    dim = _int_field(header, "dim", 0, MAX_EMBEDDING_DIM)
    arrays = []
    for part, dtype, shape in zip(
        parts[1:], ("<f4", "<f4", "<i4", "<f4"), ((n, 4), (n,), (n,), (n, dim))
    ):
        buf = _bytes_of(part)
        need = int(np.prod(shape)) * 4
        if len(buf) != need:
            raise ProtocolError(f"array part has {len(buf)} bytes, expected {need} for shape {shape}")
        arrays.append(np.frombuffer(buf, dtype=dtype).reshape(shape))
    boxes, scores, class_ids, embeddings = arrays
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all() and np.isfinite(embeddings).all()):
        raise ProtocolError("non-finite values in detections")
    return DetectionsMessage(
        header["stream"], _int_field(header, "seq"), _int_field(header, "index"),
        _float_field(header, "ts"), _int_field(header, "width", 1, MAX_SIDE),
        _int_field(header, "height", 1, MAX_SIDE),
        Detections(boxes, scores, class_ids, embeddings),
    )


# ---------------------------------------------------------------- control
def encode_control(kind: str, stream_id: str, **fields) -> list:
    if kind not in CONTROL_TYPES:
        raise ValueError(f"unknown control message {kind!r}")
    return [_json({"v": VERSION, "type": kind, "stream": stream_id, **fields})]


def decode_control(parts) -> Control:
    if len(parts) != 1:
        raise ProtocolError(f"control message has {len(parts)} parts, expected 1")
    header = _parse_header(_bytes_of(parts[0]), CONTROL_TYPES)
    if header["type"] == "stream.ended":
        _int_field(header, "seq")
    return Control(header["type"], header["stream"], header)
