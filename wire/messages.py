"""Wire messages between stages (ZeroMQ multipart): one frozen dataclass per kind, one
:func:`encode`, one :func:`decode` that validates every field before anything uses it.

Every header is a JSON object with exactly the keys listed for its kind (an unknown or a
missing key is an error), ``"v": 1``, ``"type"`` and ``"stream"``: a stream id of 1..128
characters from ``[A-Za-z0-9._-]``, not dots only (safe as a file name). Counts and
sequence numbers are integers in [0, 2**62]; timestamps ``ts`` are finite seconds in
[0, 1e12]; text fields are printable and bounded (see the ``MAX_*`` constants).

Frame (grabber -> detector, :class:`FrameMessage`), parts ``[header, pixels]``:
    ``{"v", "type": "frame", "stream", "seq", "index", "ts", "shape": [H, W, 3],
    "dtype": "uint8", "encoding": "raw" | "jpeg" | "shm"[, "warp"]}``, sides 1..MAX_SIDE. ``index`` is
    the capture frame number (gaps = frames dropped at the grabber), ``seq`` the send
    sequence number (gap-free per stream, used to restore order after several detectors).
    pixels: raw BGR bytes (sent zero-copy, exactly H*W*3 of them) or a JPEG (its own header
    must give the same H and W and 3 components: read before decoding); for "shm" (ipc
    only) the header also has ``"ring": str, "slot": int`` naming a slot of a shared-memory
    frame ring (:mod:`wire.frame_ring`) and the pixels part is empty.

Detections (detector -> tracker, :class:`DetectionsMessage`), parts
``[header, boxes, scores, class_ids, embeddings]``:
    ``{"v", "type": "detections", "stream", "seq", "index", "ts", "n": N, "dim": D[, "warp"]}``;
    arrays are little-endian float32[N, 4] (x1 <= x2, y1 <= y2, |values| <= MAX_COORD),
    float32[N] (scores in [0, 1]), int32[N] (class ids >= 0), float32[N, D], all finite.

Camera motion: the optional ``"warp": [[a11, a12, a13], [a21, a22, a23]]`` of frames and
detections is the camera's 2x3 affine warp taking pixels of the stream's previous sent frame
to this one (:mod:`detector.camera_motion`, computed by the grabber, copied by the detector,
applied by the tracker); absent = the identity (encode leaves an identity out). Its values
are finite float32, the translation within +-MAX_COORD, the linear part's entries within
+-MAX_WARP_LINEAR and its determinant in [MIN_WARP_DET, MAX_WARP_DET] (no mirror, no collapse).

Control (grabber -> detector -> tracker), one part:
    :class:`StreamStarted` ``{"v", "type": "stream.started", "stream", "source": str,
    "width": int, "height": int (0..MAX_SIDE, 0 = unknown), "fps": float (0, MAX_FPS],
    "live": bool, "frames": int (0 = unknown), "classes": [str, ...]}`` (the grabber sends no
    class names, the detector adds its model's);
    :class:`StreamEnded` ``{"v", "type": "stream.ended", "stream", "seq": <frames sent>,
    "reason": str, "dropped": int, "decode_errors": int}``;
    :class:`StreamStalled` ``{"v", "type": "stream.stalled", "stream", "seconds": float}``;
    :class:`StreamResumed` ``{"v", "type": "stream.resumed", "stream", "seconds": float}``.

Resend (tracker -> file grabber, stages started on their own), one part:
    :class:`ResendRequest` ``{"v", "type": "resend", "stream", "seq": int}``.

:func:`decode` raises :class:`ProtocolError` on anything malformed (and only that); stages
count and drop such messages and never crash on them. :func:`encode` checks its header with
the same rules, so whatever it sends decodes. Receivers set ``ZMQ_MAXMSGSIZE`` from
``MAX_FRAME_PART_BYTES`` / ``MAX_DETECTIONS_PART_BYTES`` (:mod:`wire.transport`).
"""
from __future__ import annotations

import json
import math
import re
import reprlib
from dataclasses import dataclass, field
from typing import ClassVar, Union

import cv2
import numpy as np

from base.types import Detections, Frame
from wire.frame_ring import RingError

VERSION = 1
MAX_HEADER_BYTES = 128 * 1024  # room for a stream.started with MAX_CLASSES long names
MAX_STREAM_ID = 128
MAX_SIDE = 8192
MAX_DETECTIONS = 10_000
MAX_EMBEDDING_DIM = 4096
MAX_COUNT = 2**62  # seq, index, frames, dropped
MAX_TIMESTAMP = 1e12  # seconds: media time, or wall clock for live sources
MAX_FPS = 1e6  # RTSP sources may report their 90 kHz clock as fps
MAX_SECONDS = 1e9
MAX_SOURCE = 4096  # characters of a source URL or path
MAX_REASON = 256
MAX_CLASSES = 1024
MAX_CLASS_NAME = 64
MAX_COORD = 1e6  # pixels, far beyond any frame side
MAX_RING_NAME = 255
MAX_WARP_LINEAR = 4.0  # |entries| of a warp's linear part
MIN_WARP_DET, MAX_WARP_DET = 0.25, 4.0  # its determinant: the area scale of one frame to the next
# the largest message part a receiver accepts, per socket (ZMQ_MAXMSGSIZE): a peer sending
# more is disconnected by libzmq as soon as the part's length is read
MAX_FRAME_PART_BYTES = MAX_SIDE * MAX_SIDE * 3  # raw pixels of the largest frame; JPEGs are smaller
MAX_DETECTIONS_PART_BYTES = max(MAX_HEADER_BYTES, MAX_DETECTIONS * MAX_EMBEDDING_DIM * 4)  # embeddings
ENCODINGS = ("raw", "jpeg", "shm")
_STREAM_ID = re.compile(r"[A-Za-z0-9._-]{1,%d}" % MAX_STREAM_ID)
_COMMON_KEYS = frozenset({"v", "type", "stream"})


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the receiver drops it."""


def identity_warp() -> np.ndarray:
    """float32[2,3]: a still camera."""
    return np.eye(2, 3, dtype=np.float32)


_IDENTITY = identity_warp()


# ---------------------------------------------------------------- message types
@dataclass(frozen=True, eq=False)
class FrameMessage:
    """A frame on the wire and its send sequence number ``seq``. ``encoding`` is "raw",
    "jpeg" or "shm"; "shm" frames name their ``ring_slot`` = (ring name, slot)."""

    TYPE: ClassVar[str] = "frame"
    frame: Frame
    seq: int
    encoding: str = "raw"
    ring_slot: tuple[str, int] | None = None
    warp: np.ndarray = field(default_factory=identity_warp)  # float32[2,3] camera motion since the previous sent frame

    @property
    def stream_id(self) -> str:
        return self.frame.stream_id


@dataclass(frozen=True, eq=False)
class DetectionsMessage:
    """The detections of frame ``index`` (send number ``seq``) taken at ``timestamp`` s;
    ``warp`` float32[2,3]: the camera's motion from the previous sent frame to this one."""

    TYPE: ClassVar[str] = "detections"
    stream_id: str
    seq: int
    index: int
    timestamp: float
    detections: Detections
    warp: np.ndarray = field(default_factory=identity_warp)


@dataclass(frozen=True)
class StreamStarted:
    """A source opened: its size in pixels (0 = unknown), frame rate, live or file, frame
    count (0 = unknown) and, once the detector forwards it, the model's class names."""

    TYPE: ClassVar[str] = "stream.started"
    stream_id: str
    source: str
    width: int
    height: int
    fps: float
    live: bool
    frames: int = 0
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StreamEnded:
    """A source ended after ``seq`` frame messages; ``dropped`` frames were never sent;
    ``decode_errors`` frames of a file could not be decoded and were skipped."""

    TYPE: ClassVar[str] = "stream.ended"
    stream_id: str
    seq: int
    reason: str = "eof"
    dropped: int = 0
    decode_errors: int = 0


@dataclass(frozen=True)
class StreamStalled:
    """A live source has sent nothing for ``seconds``."""

    TYPE: ClassVar[str] = "stream.stalled"
    stream_id: str
    seconds: float


@dataclass(frozen=True)
class StreamResumed:
    """A stalled live source sends frames again after a gap of ``seconds`` without any."""

    TYPE: ClassVar[str] = "stream.resumed"
    stream_id: str
    seconds: float


@dataclass(frozen=True)
class ResendRequest:
    """The tracker asks a file grabber to send its stream again from frame ``seq`` (a frame
    went missing: a detector died holding it). Only stages started on their own use it
    (``vidtrack worker``); under the service the supervisor rewinds the grabbers itself."""

    TYPE: ClassVar[str] = "resend"
    stream_id: str
    seq: int


ControlMessage = Union[StreamStarted, StreamEnded, StreamStalled, StreamResumed]
Message = Union[FrameMessage, DetectionsMessage, StreamStarted, StreamEnded, StreamStalled, StreamResumed,
                ResendRequest]
CONTROL_MESSAGES: dict[str, type] = {cls.TYPE: cls for cls in (StreamStarted, StreamEnded, StreamStalled,
                                                                 StreamResumed)}


def valid_stream_id(stream_id) -> bool:
    """Whether ``stream_id`` may name a stream on the wire (and a file)."""
    return isinstance(stream_id, str) and _STREAM_ID.fullmatch(stream_id) is not None \
        and stream_id.strip(".") != ""


def reason_text(text: str) -> str:
    """``text`` made fit for :attr:`StreamEnded.reason`: non-printable characters become
    spaces, and it is cut to MAX_REASON characters."""
    return "".join(c if c.isprintable() else " " for c in str(text))[:MAX_REASON]


# ---------------------------------------------------------------- field readers
def _show(value) -> str:
    """A short repr for error messages (bounded depth and length: values come from the wire)."""
    return reprlib.repr(value)


def _int(header: dict, key: str, lo: int = 0, hi: int = MAX_COUNT) -> int:
    value = header[key]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ProtocolError(f"field {key!r} must be an integer in [{lo}, {hi}], got {_show(value)}")
    return value


def _float(header: dict, key: str, lo: float, hi: float) -> float:
    value = header[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise ProtocolError(f"field {key!r} must be a finite number in [{lo}, {hi}], got {_show(value)}")
    return float(value)


def _bool(header: dict, key: str) -> bool:
    value = header[key]
    if not isinstance(value, bool):
        raise ProtocolError(f"field {key!r} must be true or false, got {_show(value)}")
    return value


def _text(value, key: str, max_len: int, min_len: int = 0) -> str:
    if not isinstance(value, str) or not min_len <= len(value) <= max_len or not value.isprintable():
        raise ProtocolError(f"field {key!r} must be printable text of {min_len}..{max_len} characters")
    return value


def _class_names(value) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_CLASSES:
        raise ProtocolError(f"field 'classes' must be a list of at most {MAX_CLASSES} names")
    return tuple(_text(name, "classes", MAX_CLASS_NAME, 1) for name in value)


def _check_keys(header: dict, keys: frozenset, optional: frozenset = frozenset()) -> None:
    keys = keys | (optional & header.keys())
    if header.keys() != keys:
        missing, unknown = sorted(keys - header.keys()), sorted(header.keys() - keys)
        raise ProtocolError(f"{header['type']} header: missing fields {missing}, unknown fields {unknown}"[:300])


# ---------------------------------------------------------------- headers and parts
def _json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _buffer(part) -> memoryview:
    """The bytes of one message part (bytes, a zmq.Frame, a contiguous array) without a copy."""
    try:
        view = memoryview(part.buffer if hasattr(part, "buffer") else part)
        if view.ndim == 1 and view.itemsize == 1:
            return view
        return view.cast("B") if view.nbytes else memoryview(b"")  # cast refuses zeros in the shape
    except (TypeError, ValueError):
        raise ProtocolError(f"message part of type {type(part).__name__} is not a byte buffer") from None


def _parse_header(part) -> dict:
    """The header as a dict whose version, type and stream id are valid."""
    raw = _buffer(part)
    if raw.nbytes > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {raw.nbytes} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(raw))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: deep nesting
        raise ProtocolError(f"header is not JSON: {exc}"[:200]) from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    if header.get("v") != VERSION or isinstance(header.get("v"), bool):
        raise ProtocolError(f"unsupported protocol version {_show(header.get('v'))}")
    if not isinstance(header.get("type"), str) or header["type"] not in _READERS:
        raise ProtocolError(f"unknown message type {_show(header.get('type'))}")
    if not valid_stream_id(header.get("stream")):
        raise ProtocolError(f"stream id must be 1..{MAX_STREAM_ID} characters of [A-Za-z0-9._-], not dots only")
    return header


def _check_part_count(parts, kind: str, expected: int) -> None:
    if len(parts) != expected:
        raise ProtocolError(f"{kind} message has {len(parts)} parts, expected {expected}")


def decode(parts, rings=None) -> Message:
    """The validated message of ``parts`` (header parsed once, dispatched on its type), or
    ProtocolError. Raw pixels and arrays are not copied. ``rings`` (a
    :class:`wire.frame_ring.RingReader`) resolves "shm" frames; without it they are refused."""
    if not isinstance(parts, (list, tuple)) or not parts:
        raise ProtocolError("empty message")
    header = _parse_header(parts[0])
    return _READERS[header["type"]](header, parts, rings)


def encode(message: Message, jpeg_quality: int = 90) -> list:
    """The parts of ``message``; raw pixels and arrays are passed as buffers (zero-copy send).
    Raises ProtocolError (a ValueError) if the message would not decode."""
    writer = _WRITERS.get(type(message))
    if writer is None:
        raise TypeError(f"not a wire message: {type(message).__name__}")
    parts = writer(message, jpeg_quality)
    _check_encoded(message, parts)
    return parts


def _check_encoded(message: Message, parts: list) -> None:
    """Check what :func:`encode` built with :func:`decode`'s rules (the header only, for
    frames and detections: their pixels and arrays are the sender's own)."""
    header = _parse_header(parts[0])
    if isinstance(message, FrameMessage):
        _frame_header(header)
    elif isinstance(message, DetectionsMessage):
        _detections_header(header)
    else:
        _READERS[header["type"]](header, parts, None)


# ---------------------------------------------------------------- camera warps
def warp_problem(warp) -> str | None:
    """What makes ``warp`` no camera warp for the wire (see the module doc), or None."""
    w = np.asarray(warp, dtype=np.float64)
    if w.shape != (2, 3):
        return f"warp must be 2x3, got shape {list(w.shape)}"
    if not np.isfinite(w).all():
        return "warp has non-finite values"
    if (np.abs(w[:, 2]) > MAX_COORD).any() or (np.abs(w[:, :2]) > MAX_WARP_LINEAR).any():
        return f"warp translation beyond +-{MAX_COORD:g} or linear part beyond +-{MAX_WARP_LINEAR:g}"
    det = w[0, 0] * w[1, 1] - w[0, 1] * w[1, 0]
    if not MIN_WARP_DET <= det <= MAX_WARP_DET:
        return f"warp determinant {det:.3g} outside [{MIN_WARP_DET:g}, {MAX_WARP_DET:g}]"
    return None


def _put_warp(header: dict, warp) -> dict:
    """``header`` with the "warp" field, left out for the identity; ValueError on a bad warp."""
    w = np.asarray(warp, dtype=np.float32)
    if w.shape == (2, 3) and np.array_equal(w, _IDENTITY):
        return header
    problem = warp_problem(w)
    if problem is not None:
        raise ProtocolError(problem)
    header["warp"] = w.tolist()  # float32 -> float -> JSON -> float -> float32 is exact
    return header


def _warp(header: dict) -> np.ndarray:
    """The header's warp float32[2,3] (identity where absent), checked."""
    value = header.get("warp")
    if value is None and "warp" not in header:
        return identity_warp()
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(row, list) and len(row) == 3 for row in value)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for row in value for v in row)):
        raise ProtocolError(f"field 'warp' must be [[a11, a12, a13], [a21, a22, a23]], got {_show(value)}")
    try:
        wide = np.array(value, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise ProtocolError("field 'warp' has values beyond float64") from None
    problem = warp_problem(wide)
    warp = wide.astype(np.float32) if problem is None else wide
    problem = problem or warp_problem(warp)  # as encode checks it: what decodes encodes again
    if problem is not None:
        raise ProtocolError(f"field 'warp': {problem}")
    return warp


# ---------------------------------------------------------------- frames
_WARP_KEY = frozenset({"warp"})  # optional in frames and detections
_FRAME_KEYS = _COMMON_KEYS | {"seq", "index", "ts", "shape", "dtype", "encoding"}
_SHM_FRAME_KEYS = _FRAME_KEYS | {"ring", "slot"}


def _write_frame(message: FrameMessage, jpeg_quality: int) -> list:
    frame = message.frame
    image = np.ascontiguousarray(frame.image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError("frame image must be uint8[H, W, C]")
    if (message.encoding == "shm") != (message.ring_slot is not None):
        raise ValueError("a frame names a ring slot exactly when its encoding is 'shm'")
    header = {
        "v": VERSION, "type": "frame", "stream": frame.stream_id, "seq": int(message.seq),
        "index": int(frame.index), "ts": float(frame.timestamp),
        "shape": list(image.shape), "dtype": "uint8", "encoding": message.encoding,
    }
    _put_warp(header, message.warp)
    if message.encoding == "shm":
        header.update(ring=message.ring_slot[0], slot=int(message.ring_slot[1]))
        return [_json(header), b""]
    if message.encoding == "jpeg":
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return [_json(header), buf.tobytes()]
    return [_json(header), image]


def _frame_shape(value) -> tuple[int, int, int]:
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in value)
            or not (0 < value[0] <= MAX_SIDE and 0 < value[1] <= MAX_SIDE and value[2] == 3)):
        raise ProtocolError(f"bad shape {_show(value)}: expected [H, W, 3] with sides 1..{MAX_SIDE}")
    return tuple(value)


def _frame_header(header: dict) -> tuple[tuple[int, int, int], tuple[str, int] | None]:
    """Check a frame header (its warp too); returns (shape, ring slot or None)."""
    encoding = header.get("encoding")
    if not isinstance(encoding, str) or encoding not in ENCODINGS:
        raise ProtocolError(f"unknown encoding {_show(encoding)}")
    _check_keys(header, _SHM_FRAME_KEYS if encoding == "shm" else _FRAME_KEYS, _WARP_KEY)
    _warp(header)
    _int(header, "seq")
    _int(header, "index")
    _float(header, "ts", 0.0, MAX_TIMESTAMP)
    shape = _frame_shape(header["shape"])
    if header["dtype"] != "uint8":
        raise ProtocolError(f"unsupported dtype {_show(header['dtype'])}")
    if encoding != "shm":
        return shape, None
    return shape, (_text(header["ring"], "ring", MAX_RING_NAME, 1), _int(header, "slot", 0, 2**31))


def _raw_pixels(payload: memoryview, shape, ring_slot, rings) -> np.ndarray:
    expected = shape[0] * shape[1] * shape[2]
    if payload.nbytes != expected:
        raise ProtocolError(f"pixel payload has {payload.nbytes} bytes, shape {list(shape)} needs {expected}")
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape)


def _shm_pixels(payload: memoryview, shape, ring_slot, rings) -> np.ndarray:
    if rings is None:
        raise ProtocolError("shared-memory frame on a socket that does not accept them")
    if payload.nbytes != 0:
        raise ProtocolError("shared-memory frame with a pixel payload")
    try:
        return rings.view(ring_slot[0], ring_slot[1], shape)
    except RingError as exc:
        raise ProtocolError(str(exc)) from None


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start of frame; not DHT, JPG, DAC
_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD9)) | {0x01}  # RSTn, SOI, EOI, TEM: no length


def jpeg_size(data) -> tuple[int, int, int]:
    """(height, width, components) from a JPEG's start-of-frame header, read without
    decoding (the markers before the image data are walked); ProtocolError if there is none."""
    data = memoryview(data)
    if data.nbytes < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise ProtocolError("JPEG payload does not start with an SOI marker")
    pos = 2
    while pos + 4 <= data.nbytes:
        if data[pos] != 0xFF:
            raise ProtocolError("JPEG payload has bytes between its markers")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker in _SOF_MARKERS and length >= 8 and pos + 10 <= data.nbytes:
            height = (data[pos + 5] << 8) | data[pos + 6]
            width = (data[pos + 7] << 8) | data[pos + 8]
            return height, width, data[pos + 9]
        if marker == 0xDA or length < 2:  # image data before any frame header, or a broken length
            break
        pos += 2 + length
    raise ProtocolError("JPEG payload has no start-of-frame header")


def _jpeg_pixels(payload: memoryview, shape, ring_slot, rings) -> np.ndarray:
    if payload.nbytes > shape[0] * shape[1] * shape[2] + 1024 * 1024:
        raise ProtocolError("JPEG payload larger than its raw frame")
    height, width, components = jpeg_size(payload)
    if (height, width) != shape[:2] or components != 3:
        # refused before the decoder allocates the size the JPEG claims
        raise ProtocolError(f"JPEG header says {width}x{height} with {components} components, "
                            f"the frame header {shape[1]}x{shape[0]} with 3")
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR) if payload.nbytes else None
    if image is None or image.shape != shape:
        raise ProtocolError("JPEG payload does not decode to the declared shape")
    return image


_PIXELS = {"raw": _raw_pixels, "shm": _shm_pixels, "jpeg": _jpeg_pixels}


def _read_frame(header: dict, parts, rings) -> FrameMessage:
    _check_part_count(parts, "frame", 2)
    shape, ring_slot = _frame_header(header)
    image = _PIXELS[header["encoding"]](_buffer(parts[1]), shape, ring_slot, rings)
    frame = Frame(header["stream"], header["index"], float(header["ts"]), image)
    return FrameMessage(frame, header["seq"], header["encoding"], ring_slot, _warp(header))


# ---------------------------------------------------------------- detections
_DETECTIONS_KEYS = _COMMON_KEYS | {"seq", "index", "ts", "n", "dim"}


def _write_detections(message: DetectionsMessage, jpeg_quality: int) -> list:
    det = message.detections
    header = {
        "v": VERSION, "type": "detections", "stream": message.stream_id, "seq": int(message.seq),
        "index": int(message.index), "ts": float(message.timestamp), "n": len(det),
        "dim": int(det.embeddings.shape[1]),
    }
    return [
        _json(_put_warp(header, message.warp)),
        np.ascontiguousarray(det.boxes, "<f4"),
        np.ascontiguousarray(det.scores, "<f4"),
        np.ascontiguousarray(det.class_ids, "<i4"),
        np.ascontiguousarray(det.embeddings, "<f4"),
    ]


def _detections_header(header: dict) -> tuple[int, int]:
    """Check a detections header (its warp too); returns (N, D)."""
    _check_keys(header, _DETECTIONS_KEYS, _WARP_KEY)
    _warp(header)
    _int(header, "seq")
    _int(header, "index")
    _float(header, "ts", 0.0, MAX_TIMESTAMP)
    return _int(header, "n", 0, MAX_DETECTIONS), _int(header, "dim", 0, MAX_EMBEDDING_DIM)


def _array(part, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    buf = _buffer(part)
    need = math.prod(shape) * 4
    if buf.nbytes != need:
        raise ProtocolError(f"array part has {buf.nbytes} bytes, expected {need} for shape {shape}")
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def _check_values(boxes, scores, class_ids, embeddings) -> None:
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all() and np.isfinite(embeddings).all()):
        raise ProtocolError("non-finite values in detections")
    if (np.abs(boxes) > MAX_COORD).any() or (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise ProtocolError(f"boxes must be x1 <= x2, y1 <= y2 within +-{MAX_COORD:g} pixels")
    if ((scores < 0) | (scores > 1)).any():
        raise ProtocolError("scores must be in [0, 1]")
    if (class_ids < 0).any():
        raise ProtocolError("class ids must be >= 0")


def _read_detections(header: dict, parts, rings) -> DetectionsMessage:
    _check_part_count(parts, "detections", 5)
    n, dim = _detections_header(header)
    boxes = _array(parts[1], "<f4", (n, 4))
    scores = _array(parts[2], "<f4", (n,))
    class_ids = _array(parts[3], "<i4", (n,))
    embeddings = _array(parts[4], "<f4", (n, dim))
    _check_values(boxes, scores, class_ids, embeddings)
    return DetectionsMessage(header["stream"], header["seq"], header["index"], float(header["ts"]),
                             Detections(boxes, scores, class_ids, embeddings), _warp(header))


# ---------------------------------------------------------------- control
_STARTED_KEYS = _COMMON_KEYS | {"source", "width", "height", "fps", "live", "frames", "classes"}
_ENDED_KEYS = _COMMON_KEYS | {"seq", "reason", "dropped", "decode_errors"}
_STALLED_KEYS = _COMMON_KEYS | {"seconds"}
_RESUMED_KEYS = _COMMON_KEYS | {"seconds"}
_RESEND_KEYS = _COMMON_KEYS | {"seq"}


def _write_control(message: ControlMessage, jpeg_quality: int) -> list:
    if isinstance(message, StreamStarted):
        fields = {"source": message.source, "width": message.width, "height": message.height,
                  "fps": message.fps, "live": message.live, "frames": message.frames,
                  "classes": list(message.classes)}
    elif isinstance(message, StreamEnded):
        fields = {"seq": message.seq, "reason": message.reason, "dropped": message.dropped,
                  "decode_errors": message.decode_errors}
    elif isinstance(message, ResendRequest):
        fields = {"seq": message.seq}
    else:
        fields = {"seconds": message.seconds}
    return [_json({"v": VERSION, "type": message.TYPE, "stream": message.stream_id, **fields})]


def _read_started(header: dict, parts, rings) -> StreamStarted:
    _check_part_count(parts, "stream.started", 1)
    _check_keys(header, _STARTED_KEYS)
    return StreamStarted(
        header["stream"], _text(header["source"], "source", MAX_SOURCE),
        _int(header, "width", 0, MAX_SIDE), _int(header, "height", 0, MAX_SIDE),
        _fps(header), _bool(header, "live"),
        _int(header, "frames"), _class_names(header["classes"]),
    )


def _fps(header: dict) -> float:
    fps = _float(header, "fps", 0.0, MAX_FPS)
    if fps == 0:
        raise ProtocolError(f"field 'fps' must be in (0, {MAX_FPS:g}], got 0")
    return fps


def _read_ended(header: dict, parts, rings) -> StreamEnded:
    _check_part_count(parts, "stream.ended", 1)
    _check_keys(header, _ENDED_KEYS)
    return StreamEnded(header["stream"], _int(header, "seq"), _text(header["reason"], "reason", MAX_REASON),
                       _int(header, "dropped"), _int(header, "decode_errors"))


def _read_stalled(header: dict, parts, rings) -> StreamStalled:
    _check_part_count(parts, "stream.stalled", 1)
    _check_keys(header, _STALLED_KEYS)
    return StreamStalled(header["stream"], _float(header, "seconds", 0.0, MAX_SECONDS))


def _read_resumed(header: dict, parts, rings) -> StreamResumed:
    _check_part_count(parts, "stream.resumed", 1)
    _check_keys(header, _RESUMED_KEYS)
    return StreamResumed(header["stream"], _float(header, "seconds", 0.0, MAX_SECONDS))


def _read_resend(header: dict, parts, rings) -> ResendRequest:
    _check_part_count(parts, "resend", 1)
    _check_keys(header, _RESEND_KEYS)
    return ResendRequest(header["stream"], _int(header, "seq"))


_READERS = {
    "frame": _read_frame, "detections": _read_detections,
    "stream.started": _read_started, "stream.ended": _read_ended, "stream.stalled": _read_stalled,
    "stream.resumed": _read_resumed, "resend": _read_resend,
}
_WRITERS = {
    FrameMessage: _write_frame, DetectionsMessage: _write_detections,
    StreamStarted: _write_control, StreamEnded: _write_control, StreamStalled: _write_control,
    StreamResumed: _write_control, ResendRequest: _write_control,
}
