import json

import numpy as np
import pytest

from base.types import Detections, Frame
from wire import messages


def _frame(h=48, w=64):
    image = np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return Frame("cam-1", 7, 0.28, image)


def test_frame_round_trip_raw_is_exact():
    frame = _frame()
    parts = messages.encode(messages.FrameMessage(frame, 3))
    message = messages.decode([bytes(p) for p in parts])
    decoded, seq = message.frame, message.seq
    assert message.encoding == "raw"
    assert seq == 3 and decoded.stream_id == "cam-1" and decoded.index == 7 and decoded.timestamp == 0.28
    np.testing.assert_array_equal(decoded.image, frame.image)


def test_frame_round_trip_jpeg_is_close():
    image = np.full((48, 64, 3), 120, np.uint8)
    parts = messages.encode(messages.FrameMessage(Frame("s", 0, 0.0, image), 0, "jpeg"))
    decoded = messages.decode(parts).frame
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
    parts = _with_header(messages.encode(messages.FrameMessage(_frame(), 0)), **changes)
    with pytest.raises(messages.ProtocolError, match=message):
        messages.decode(parts)


@pytest.mark.parametrize("parts", [
    [b"not json", b""],
    [b"[1, 2]", b""],
    [b"{}"],
    [b"x" * (messages.MAX_HEADER_BYTES + 1), b""],
])
def test_garbage_frames_raise_protocol_error(parts):
    with pytest.raises(messages.ProtocolError):
        messages.decode(parts)


def test_truncated_jpeg_is_rejected():
    parts = messages.encode(messages.FrameMessage(_frame(), 0, "jpeg"))
    with pytest.raises(messages.ProtocolError):
        messages.decode([parts[0], bytes(parts[1])[:100]])


def _detections(n=3, dim=8):
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    corners = rng.uniform(0, 100, (n, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32)  # x1 <= x2, y1 <= y2
    return Detections(boxes, rng.uniform(size=n), np.arange(n), emb)


def test_detections_round_trip():
    det = _detections()
    msg = messages.DetectionsMessage("s", 4, 9, 0.5, det)
    out = messages.decode([bytes(memoryview(p)) for p in messages.encode(msg)])
    assert (out.stream_id, out.seq, out.index, out.timestamp) == ("s", 4, 9, 0.5)
    np.testing.assert_array_equal(out.detections.boxes, det.boxes)
    np.testing.assert_array_equal(out.detections.embeddings, det.embeddings)
    np.testing.assert_array_equal(out.detections.class_ids, det.class_ids)


def test_empty_detections_round_trip():
    msg = messages.DetectionsMessage("s", 0, 0, 0.0, Detections.empty(16))
    out = messages.decode(messages.encode(msg))
    assert len(out.detections) == 0 and out.detections.embeddings.shape == (0, 16)


def test_detections_with_wrong_array_length_are_rejected():
    parts = [bytes(memoryview(p)) for p in messages.encode(
        messages.DetectionsMessage("s", 0, 0, 0.0, _detections()))]
    parts[1] = parts[1][:-4]
    with pytest.raises(messages.ProtocolError, match="bytes"):
        messages.decode(parts)
    header = json.loads(parts[0])
    header["n"] = 10**9
    with pytest.raises(messages.ProtocolError, match="n"):
        messages.decode([json.dumps(header).encode(), *parts[1:]])


def test_control_messages():
    parts = messages.encode(messages.StreamEnded("s", seq=10, reason="eof"))
    control = messages.decode(parts)
    assert control == messages.StreamEnded("s", 10, "eof", 0) and control.TYPE == "stream.ended"
    with pytest.raises(messages.ProtocolError):
        messages.decode([json.dumps({"v": 1, "type": "stream.ended", "stream": "s"}).encode()])


def _control_header(message) -> dict:
    return json.loads(messages.encode(message)[0])


STARTED = messages.StreamStarted("cam-1", source="rtsp://h/x", width=640, height=480, fps=25.0, live=True,
                                 frames=0, classes=("person", "car"))


@pytest.mark.parametrize("message", [
    STARTED,
    messages.StreamEnded("cam-1", seq=3, reason="error: cannot open", dropped=2),
    messages.StreamStalled("cam-1", seconds=5.5),
    messages.StreamResumed("cam-1", seconds=12.25),
    messages.StreamEnded("cam-1", seq=212, reason="eof", dropped=0, decode_errors=78),
])
def test_control_round_trip_is_equal(message):
    assert messages.decode(messages.encode(message)) == message


@pytest.mark.parametrize("changes, message", [
    ({"frame": 5}, "unknown fields \\['frame'\\]"),  # crashed the tracker stage: stream_event(**fields)
    ({"fps": None}, "fps"),
    ({"fps": 0}, "fps"),
    ({"width": -1}, "width"),
    ({"height": 10**6}, "height"),
    ({"live": 1}, "live"),
    ({"frames": 1.5}, "frames"),
    ({"source": "x" * (messages.MAX_SOURCE + 1)}, "source"),
    ({"source": "a\nb"}, "source"),
    ({"classes": "person"}, "classes"),
    ({"classes": ["ok", 3]}, "classes"),
    ({"classes": [""]}, "classes"),
    ({"classes": ["c"] * (messages.MAX_CLASSES + 1)}, "classes"),
    ({"stream": "../etc"}, "stream id"),
    ({"stream": "..."}, "stream id"),
    ({"stream": "a" * 129}, "stream id"),
    ({"stream": "caf\u00e9"}, "stream id"),
    ({"v": True}, "version"),
])
def test_bad_stream_started_fields_are_rejected(changes, message):
    header = {**_control_header(STARTED), **changes}
    with pytest.raises(messages.ProtocolError, match=message):
        messages.decode([json.dumps(header).encode()])


@pytest.mark.parametrize("changes, message", [
    ({"dropped": "x"}, "dropped"),  # crashed the tracker stage: int(fields["dropped"])
    ({"dropped": -1}, "dropped"),
    ({"seq": True}, "seq"),
    ({"reason": 7}, "reason"),
    ({"reason": "r" * (messages.MAX_REASON + 1)}, "reason"),
    ({"extra": 1}, "unknown fields"),
])
def test_bad_stream_ended_fields_are_rejected(changes, message):
    header = {**_control_header(messages.StreamEnded("s", 1)), **changes}
    with pytest.raises(messages.ProtocolError, match=message):
        messages.decode([json.dumps(header).encode()])


def test_missing_fields_and_extra_parts_are_rejected():
    header = _control_header(messages.StreamStalled("s", 1.0))
    with pytest.raises(messages.ProtocolError, match="missing fields \\['seconds'\\]"):
        messages.decode([json.dumps({k: v for k, v in header.items() if k != "seconds"}).encode()])
    with pytest.raises(messages.ProtocolError, match="parts"):
        messages.decode([json.dumps(header).encode(), b""])


def test_deeply_nested_json_is_a_protocol_error():
    with pytest.raises(messages.ProtocolError, match="not JSON"):
        messages.decode([b"[" * 100_000])


@pytest.mark.parametrize("column, value, message", [
    ("boxes", [[10, 10, 5, 20]], "x1 <= x2"),
    ("boxes", [[0, 0, 1e9, 1]], "x1 <= x2"),
    ("scores", [1.5], "scores"),
    ("class_ids", [-1], "class ids"),
])
def test_bad_detection_values_are_rejected(column, value, message):
    det = Detections([[0, 0, 10, 10]], [0.5], [0])
    setattr(det, column, np.asarray(value, det.__dict__[column].dtype))
    parts = [bytes(memoryview(p)) for p in messages.encode(messages.DetectionsMessage("s", 0, 0, 0.0, det))]
    with pytest.raises(messages.ProtocolError, match=message):
        messages.decode(parts)


def test_encode_refuses_what_decode_would_drop():
    with pytest.raises(messages.ProtocolError, match="stream id"):
        messages.encode(messages.StreamStalled("no spaces", 1.0))
    with pytest.raises(messages.ProtocolError, match="reason"):
        messages.encode(messages.StreamEnded("s", 0, reason="line\nbreak"))
    assert messages.reason_text("error: a\nb" + "x" * 500) == "error: a b" + "x" * (messages.MAX_REASON - 10)


def test_a_frame_message_where_a_control_one_is_expected_decodes_as_a_frame():
    """One decode for every kind: the caller tells kinds apart by type (a stage drops kinds
    it does not take)."""
    message = messages.decode(messages.encode(messages.FrameMessage(_frame(), 0)))
    assert isinstance(message, messages.FrameMessage) and message.stream_id == "cam-1"


@pytest.mark.parametrize("changes, message", [
    ({"seconds": -1.0}, "seconds"),
    ({"seconds": "10"}, "seconds"),
    ({"seconds": float("nan")}, "not JSON|seconds"),
    ({"frame": 3}, "unknown fields"),
])
def test_bad_stream_resumed_fields_are_rejected(changes, message):
    header = {**_control_header(messages.StreamResumed("s", 1.0)), **changes}
    with pytest.raises(messages.ProtocolError, match=message):
        messages.decode([json.dumps(header).encode()])


def test_stream_ended_decode_errors_must_be_a_count():
    header = _control_header(messages.StreamEnded("s", 1, decode_errors=2))
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(messages.ProtocolError, match="decode_errors"):
            messages.decode([json.dumps({**header, "decode_errors": bad}).encode()])
