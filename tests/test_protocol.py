import json

import numpy as np
import pytest

from base.types import Detections
from wire import messages
from base.types import Frame


def _frame(h=48, w=64):
    image = np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return Frame("cam-1", 7, 0.28, image)


def test_frame_round_trip_raw_is_exact():
    frame = _frame()
    parts = messages.encode_frame(frame, seq=3)
    decoded, seq = messages.decode_frame([bytes(p) for p in parts])
    assert seq == 3 and decoded.stream_id == "cam-1" and decoded.index == 7 and decoded.timestamp == 0.28
    np.testing.assert_array_equal(decoded.image, frame.image)


def test_frame_round_trip_jpeg_is_close():
    image = np.full((48, 64, 3), 120, np.uint8)
    parts = messages.encode_frame(Frame("s", 0, 0.0, image), seq=0, encoding="jpeg")
    decoded, _ = messages.decode_frame(parts)
    assert decoded.image.shape == image.shape
    assert np.abs(decoded.image.astype(int) - 120).max() <= 3


def _header(parts):
    return json.loads(bytes(parts[0]))


def _with_header(parts, **changes):
    header = _header(parts)
    header.update(changes)
    return [json.dumps(header).encode(), bytes(parts[1])]


@pytest.mark.parametrize("changes, message", [
    ({"shape": [48, 64, 3, 1]}, "bad shape"),
    ({"shape": [48, 65, 3]}, "needs"),
    ({"shape": [100000, 64, 3]}, "bad shape"),
    ({"dtype": "float32"}, "dtype"),
    ({"v": 99}, "version"),
    ({"index": -1}, "index"),
    ({"seq": "3"}, "seq"),
    ({"stream": ""}, "stream id"),
    ({"encoding": "png"}, "encoding"),
    ({"ts": float("nan")}, "ts"),
])
def test_bad_frame_headers_are_rejected_before_pixels_are_touched(changes, message):
    parts = _with_header(messages.encode_frame(_frame(), seq=0), **changes)
    with pytest.raises(messages.ProtocolError, match=message):
        messages.decode_frame(parts)


@pytest.mark.parametrize("parts", [
    [b"not json", b""],
    [b"[1, 2]", b""],
    [b"{}"],
    [b"x" * (messages.MAX_HEADER_BYTES + 1), b""],
])
def test_garbage_frames_raise_protocol_error(parts):
    with pytest.raises(messages.ProtocolError):
        messages.decode_frame(parts)


def test_truncated_jpeg_is_rejected():
    parts = messages.encode_frame(_frame(), seq=0, encoding="jpeg")
    with pytest.raises(messages.ProtocolError):
        messages.decode_frame([parts[0], bytes(parts[1])[:100]])


def _detections(n=3, dim=8):
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    boxes = rng.uniform(0, 100, (n, 4)).astype(np.float32)
    return Detections(boxes, rng.uniform(size=n), np.arange(n), emb)


def test_detections_round_trip():
    det = _detections()
    msg = messages.DetectionsMessage("s", 4, 9, 0.5, 640, 480, det)
    out = messages.decode_detections([bytes(memoryview(p)) for p in messages.encode_detections(msg)])
    assert (out.stream_id, out.seq, out.index, out.width, out.height) == ("s", 4, 9, 640, 480)
    np.testing.assert_array_equal(out.detections.boxes, det.boxes)
    np.testing.assert_array_equal(out.detections.embeddings, det.embeddings)
    np.testing.assert_array_equal(out.detections.class_ids, det.class_ids)


def test_empty_detections_round_trip():
    msg = messages.DetectionsMessage("s", 0, 0, 0.0, 10, 10, Detections.empty(16))
    out = messages.decode_detections(messages.encode_detections(msg))
    assert len(out.detections) == 0 and out.detections.embeddings.shape == (0, 16)


def test_detections_with_wrong_array_length_are_rejected():
    parts = [bytes(memoryview(p)) for p in messages.encode_detections(
        messages.DetectionsMessage("s", 0, 0, 0.0, 10, 10, _detections()))]
    parts[1] = parts[1][:-4]
    with pytest.raises(messages.ProtocolError, match="bytes"):
        messages.decode_detections(parts)
    header = json.loads(parts[0])
    header["n"] = 10**9
    with pytest.raises(messages.ProtocolError, match="n"):
        messages.decode_detections([json.dumps(header).encode(), *parts[1:]])


def test_control_messages():
    parts = messages.encode_control("stream.ended", "s", seq=10, reason="eof")
    assert messages.message_type(parts) == "stream.ended"
    control = messages.decode_control(parts)
    assert control.kind == "stream.ended" and control.fields["seq"] == 10
    with pytest.raises(messages.ProtocolError):
        messages.decode_control([json.dumps({"v": 1, "type": "stream.ended", "stream": "s"}).encode()])
