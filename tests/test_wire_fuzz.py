"""Property-based tests of the wire: random valid messages of every kind round-trip, random
and mutated ones decode or raise ProtocolError (nothing else), and the tracker stage and the
detector stage's receive loop keep running on them over real ZeroMQ sockets."""
from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from base.types import Detections, Frame
from wire import frame_ring, messages
from wire.transport import Security
from workers.detector_worker import DetectorStage, DetectorStageSpec
from workers.detector_config import DetectorConfig
from workers.tracker_worker import EventsConfig, TrackerStage, TrackerStageSpec

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STAGE_FUZZ = settings(max_examples=25, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
MESSAGE_TYPES = (messages.FrameMessage, messages.DetectionsMessage, messages.StreamStarted,
                 messages.StreamEnded, messages.StreamStalled, messages.StreamResumed, messages.ResendRequest)

# ---------------------------------------------------------------- valid messages
stream_ids = st.text("abcXYZ019._-", min_size=1, max_size=messages.MAX_STREAM_ID).filter(lambda s: s.strip("."))
printable = st.characters(codec="utf-8").filter(str.isprintable)
counts = st.integers(0, messages.MAX_COUNT)
timestamps = st.floats(0, messages.MAX_TIMESTAMP)


@st.composite
def warps(draw):
    """A camera warp float32[2,3] the wire accepts: the identity, or a rotation, scale and
    translation (scale 0.6..1.6: determinant 0.36..2.56)."""
    if draw(st.booleans()):
        return messages.identity_warp()
    angle, scale = draw(st.floats(-np.pi, np.pi)), draw(st.floats(0.6, 1.6))
    shift = st.floats(-messages.MAX_COORD, messages.MAX_COORD)
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, draw(shift)], [s, c, draw(shift)]], np.float32)


@st.composite
def frame_messages(draw, encodings=("raw",)):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    image = np.frombuffer(draw(st.binary(min_size=h * w * 3, max_size=h * w * 3)), np.uint8).reshape(h, w, 3)
    frame = Frame(draw(stream_ids), draw(counts), draw(timestamps), image)
    return messages.FrameMessage(frame, draw(counts), draw(st.sampled_from(encodings)), warp=draw(warps()))


@st.composite
def detections_messages(draw):
    n, dim = draw(st.integers(0, 5)), draw(st.integers(0, 6))
    coords = st.floats(-messages.MAX_COORD, messages.MAX_COORD, width=32)
    corners = np.array(draw(st.lists(st.tuples(coords, coords), min_size=2 * n, max_size=2 * n)), np.float32)
    corners = corners.reshape(n, 2, 2)
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    scores = draw(st.lists(st.floats(0, 1, width=32), min_size=n, max_size=n))
    class_ids = draw(st.lists(st.integers(0, 2**31 - 1), min_size=n, max_size=n))
    embeddings = draw(st.lists(st.floats(-1e3, 1e3, width=32), min_size=n * dim, max_size=n * dim))
    det = Detections(boxes, scores, class_ids, np.array(embeddings, np.float32).reshape(n, dim))
    return messages.DetectionsMessage(draw(stream_ids), draw(counts), draw(counts), draw(timestamps), det,
                                      draw(warps()))


stream_started = st.builds(
    messages.StreamStarted, stream_ids, st.text(printable, max_size=80),
    st.integers(0, messages.MAX_SIDE), st.integers(0, messages.MAX_SIDE),
    st.floats(0, messages.MAX_FPS, exclude_min=True), st.booleans(), counts,
    st.lists(st.text(printable, min_size=1, max_size=messages.MAX_CLASS_NAME), max_size=5).map(tuple))
stream_ended = st.builds(messages.StreamEnded, stream_ids, counts, st.text(printable, max_size=messages.MAX_REASON),
                         counts, counts)
stream_stalled = st.builds(messages.StreamStalled, stream_ids, st.floats(0, messages.MAX_SECONDS))
stream_resumed = st.builds(messages.StreamResumed, stream_ids, st.floats(0, messages.MAX_SECONDS))
control_messages = st.one_of(stream_started, stream_ended, stream_stalled, stream_resumed)
resend_requests = st.builds(messages.ResendRequest, stream_ids, counts)
valid_messages = st.one_of(frame_messages(("raw", "jpeg")), detections_messages(), control_messages)


def _as_bytes(parts) -> list[bytes]:
    return [bytes(memoryview(p)) for p in parts]


def _assert_same(decoded, message) -> None:
    assert type(decoded) is type(message)
    if isinstance(message, messages.FrameMessage):
        a, b = decoded.frame, message.frame
        assert (a.stream_id, a.index, a.timestamp) == (b.stream_id, b.index, b.timestamp)
        assert (decoded.seq, decoded.encoding, decoded.ring_slot) == (message.seq, message.encoding, message.ring_slot)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(decoded.warp, message.warp)
    elif isinstance(message, messages.DetectionsMessage):
        assert (decoded.stream_id, decoded.seq, decoded.index, decoded.timestamp) == \
            (message.stream_id, message.seq, message.index, message.timestamp)
        for name in ("boxes", "scores", "class_ids", "embeddings"):
            np.testing.assert_array_equal(getattr(decoded.detections, name), getattr(message.detections, name))
        np.testing.assert_array_equal(decoded.warp, message.warp)
    else:
        assert decoded == message


# ---------------------------------------------------------------- (1) round trips
@FUZZ
@given(st.one_of(frame_messages(), detections_messages(), control_messages, resend_requests))
def test_valid_messages_round_trip_equal(message):
    _assert_same(messages.decode(_as_bytes(messages.encode(message))), message)


@pytest.fixture(scope="module")
def ring():
    """(writer, reader) of a real shared-memory frame ring, or skip."""
    if not frame_ring.available():
        pytest.skip("no writable /dev/shm on this machine")
    prefix = f"vidtrack-fuzz{os.getpid()}"
    writer, reader = frame_ring.RingWriter(prefix, slots=2), frame_ring.RingReader()
    name, slot = writer.put(np.zeros((12, 12, 3), np.uint8))  # slots sized for the largest fuzzed frame
    reader.view(name, slot, (12, 12, 3))
    reader.release_all()
    yield writer, reader
    reader.close()
    writer.close()
    frame_ring.cleanup(prefix)


@FUZZ
@given(frame_messages())
def test_shm_frames_round_trip_equal(ring, message):
    writer, reader = ring
    slot = writer.put(message.frame.image)
    try:
        shm = messages.FrameMessage(message.frame, message.seq, "shm", slot)
        _assert_same(messages.decode(_as_bytes(messages.encode(shm)), reader), shm)
    finally:
        reader.release_all()
        writer.cancel(*slot)  # free even where no decode held it


# ---------------------------------------------------------------- (2) random and mutated input
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)
edge_values = st.sampled_from([-1, 0, 2**63, -(2**63), 1.5, float("inf"), float("nan"), "", "x" * 300,
                               "a\nb", "\ud800", [], {}, None, True, False, [1, 2, 3], [0, 0, 3]])
header_values = st.one_of(json_values, edge_values)
# near-valid warps: a 2x3 of numbers, some beyond the wire's bounds (determinant, translation, non-finite)
warp_values = st.lists(st.lists(st.one_of(st.floats(), st.integers(), st.sampled_from([0.0, 1.0, 1e6, 1e7])),
                                min_size=2, max_size=4), min_size=1, max_size=3)


def _decodes_or_protocol_error(parts, rings=None):
    """decode's result (also checked to encode again) or None for a ProtocolError; anything
    else fails the test."""
    try:
        message = messages.decode(parts, rings)
    except messages.ProtocolError:
        return None
    assert isinstance(message, MESSAGE_TYPES)
    messages.encode(message)  # a decoded message is a valid one
    return message


@st.composite
def mutated(draw, messages_strategy=valid_messages):
    """The parts (bytes) of a valid message changed in one to three ways."""
    parts = _as_bytes(messages.encode(draw(messages_strategy)))
    for _ in range(draw(st.integers(1, 3))):
        parts = draw(st.sampled_from(_MUTATIONS))(draw, parts)
    return parts


def _header_keys(parts) -> list[str]:
    """The keys of the header, or none where an earlier mutation broke it."""
    try:
        header = json.loads(parts[0])
    except (IndexError, ValueError):
        return []
    return sorted(header) if isinstance(header, dict) and header else []


def _edit_header(draw, parts, edit):
    if not _header_keys(parts):
        return parts
    header = json.loads(parts[0])
    edit(header)
    return [json.dumps(header).encode(), *parts[1:]]


def _remove_field(draw, parts):
    keys = _header_keys(parts)
    return _edit_header(draw, parts, lambda h: h.pop(draw(st.sampled_from(keys)))) if keys else parts


def _retype_field(draw, parts):
    keys = _header_keys(parts)
    if not keys:
        return parts
    key, value = draw(st.sampled_from(keys)), draw(header_values | warp_values)
    return _edit_header(draw, parts, lambda h: h.__setitem__(key, value))


def _add_field(draw, parts):
    key = draw(st.sampled_from(["frame", "ring", "slot", "classes", "width", "warp", "extra"]) | st.text(max_size=8))
    value = draw(header_values | warp_values)
    return _edit_header(draw, parts, lambda h: h.__setitem__(key, value))


def _resize_part(draw, parts):
    if not parts:
        return parts
    i = draw(st.integers(0, len(parts) - 1))
    part = parts[i]
    cut = part[:draw(st.integers(0, max(len(part) - 1, 0)))]
    changed = draw(st.sampled_from([cut, part + draw(st.binary(min_size=1, max_size=16))]))
    return [*parts[:i], changed, *parts[i + 1:]]


def _drop_or_add_part(draw, parts):
    if draw(st.booleans()) and len(parts) > 1:
        i = draw(st.integers(0, len(parts) - 1))
        return [*parts[:i], *parts[i + 1:]]
    return [*parts, draw(st.binary(max_size=16))]


_MUTATIONS = [_remove_field, _retype_field, _add_field, _resize_part, _drop_or_add_part]


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=6))
def test_random_bytes_decode_or_raise_protocol_error(parts):
    _decodes_or_protocol_error(parts)


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=32), json_values.map(lambda v: json.dumps(v).encode())),
                min_size=1, max_size=6))
def test_random_multipart_lists_decode_or_raise_protocol_error(parts):
    _decodes_or_protocol_error(parts)


@FUZZ
@given(st.sampled_from(sorted(messages.CONTROL_MESSAGES) + ["frame", "detections", "resend"]),
       st.dictionaries(st.sampled_from(["seq", "index", "ts", "shape", "dtype", "encoding", "ring", "slot", "n",
                                        "dim", "source", "width", "height", "fps", "live", "frames", "classes",
                                        "reason", "dropped", "seconds"]), header_values),
       st.lists(st.binary(max_size=32), max_size=4))
def test_random_headers_of_every_type_decode_or_raise_protocol_error(kind, fields, rest):
    header = {"v": 1, "type": kind, "stream": "s", **fields}
    _decodes_or_protocol_error([json.dumps(header).encode(), *rest])


@FUZZ
@given(mutated())
def test_mutated_messages_decode_or_raise_protocol_error(parts):
    _decodes_or_protocol_error(parts)


@FUZZ
@given(frame_messages(), st.data())
def test_mutated_shm_frames_decode_or_raise_protocol_error(ring, message, data):
    writer, reader = ring
    slot = writer.put(message.frame.image)
    try:
        parts = _as_bytes(messages.encode(messages.FrameMessage(message.frame, message.seq, "shm", slot)))
        for _ in range(data.draw(st.integers(1, 2))):
            parts = data.draw(st.sampled_from(_MUTATIONS))(data.draw, parts)
        _decodes_or_protocol_error(parts, reader)
    finally:
        reader.release_all()
        writer.cancel(*slot)  # free even where no decode held it


# ---------------------------------------------------------------- (3) stages keep running
VALID_STREAM = "valid-stream"


def _not_for(stream_id: str, batch: list[list[bytes]]) -> list[list[bytes]]:
    """Leave out fuzzed messages that decode as the valid stream's (they would change it)."""
    kept = []
    for parts in batch:
        try:
            message = messages.decode(parts)
        except messages.ProtocolError:
            message = None
        if message is None or not message.stream_id.startswith(stream_id):
            kept.append(parts)
    return kept


def _tracker_stream(stream_id: str, frames: int) -> list[list]:
    started = messages.StreamStarted(stream_id, "x.mp4", 200, 100, 25.0, False, frames, ("a",))
    out = [messages.encode(started)]
    for i in range(frames):
        det = Detections([[10 + i, 10, 40 + i, 80]], [0.9], [0])
        out.append(messages.encode(messages.DetectionsMessage(stream_id, i, i, i / 25.0, det)))
    return out + [messages.encode(messages.StreamEnded(stream_id, frames))]


@pytest.fixture(scope="module")
def tracker_stage(tmp_path_factory):
    """A real TrackerStage running on a thread, its PULL socket fed by a PUSH socket here;
    yields (stage, push, reports, thread)."""
    folder = tmp_path_factory.mktemp("tracker-fuzz")
    spec = TrackerStageSpec(detections_endpoint=f"ipc://{folder}/det", events=EventsConfig(endpoint=f"ipc://{folder}/ev"),
                            exit_when_done=False)
    reports: list[dict] = []
    stop = threading.Event()
    stage = TrackerStage(spec, stop, report=lambda **kw: reports.append(kw))
    thread = threading.Thread(target=stage.run, daemon=True)
    thread.start()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(spec.detections_endpoint)
    yield stage, push, reports, thread
    stop.set()
    thread.join(10)
    push.close(0)
    ctx.term()


_example = iter(range(10**9))


@st.composite
def inconsistent_streams(draw):
    """Valid detections of one stream, in seq order, whose frame indices may not increase and
    whose embedding sizes may change (each message is valid alone; the tracker refuses these)."""
    stream_id = f"fuzz-{draw(st.integers(0, 10**6))}"
    out = []
    for seq in range(draw(st.integers(1, 4))):
        dim = draw(st.sampled_from([0, 2, 3]))
        det = Detections([[0, 0, 10, 10]], [0.5], [0], np.ones((1, dim), np.float32))
        message = messages.DetectionsMessage(stream_id, seq, draw(st.sampled_from([0, 1, 5, 2**40])), 0.0, det)
        out.append(_as_bytes(messages.encode(message)))
    return out


@STAGE_FUZZ
@given(st.lists(st.one_of(mutated(), st.lists(st.binary(max_size=48), min_size=1, max_size=4), valid_messages.map(
    lambda m: _as_bytes(messages.encode(m)))), min_size=1, max_size=12), inconsistent_streams())
def test_tracker_stage_keeps_running_on_fuzzed_messages(tracker_stage, batch, inconsistent):
    stage, push, reports, thread = tracker_stage
    stream_id = f"{VALID_STREAM}-{next(_example)}"
    bad_before = stage.bad_messages
    sent_bad = 0
    for parts in _not_for(VALID_STREAM, batch):
        sent_bad += _decodes_or_protocol_error(parts) is None
        push.send_multipart(parts)
    for parts in inconsistent:
        push.send_multipart(parts)
    for parts in _tracker_stream(stream_id, 5):
        push.send_multipart(parts, copy=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and thread.is_alive():
        ended = [r for r in reports if r["event"] == "stream.ended" and r["stream"] == stream_id]
        if ended:
            break
        time.sleep(0.005)
    assert thread.is_alive(), "the tracker stage stopped"
    assert ended and ended[0]["frames"] == 5 and ended[0]["reason"] == "eof"
    assert stage.bad_messages >= bad_before + sent_bad


@pytest.fixture(scope="module")
def detector_stage(tmp_path_factory):
    """A real DetectorStage on real ipc sockets (its network is not used: these tests drive
    its receive loop, which decodes, drops and forwards); yields (stage, push, pull)."""
    folder = tmp_path_factory.mktemp("detector-fuzz")
    frames_ep, dets_ep = f"ipc://{folder}/f", f"ipc://{folder}/d"
    ctx = zmq.Context()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.bind(frames_ep)
    pull.bind(dets_ep)

    class ClassNames:  # what the receive loop asks of the detector: its class names
        class_names = ["a", "b"]

    spec = DetectorStageSpec([frames_ep], dets_ep, DetectorConfig(batch_size=4, batch_wait_ms=5))
    stage = DetectorStage(spec, ClassNames(), None)
    yield stage, push, pull
    stage._factory.close()
    if stage._rings is not None:
        stage._rings.close()
    push.close(0)
    pull.close(0)
    ctx.term()


@STAGE_FUZZ
@given(st.lists(st.one_of(mutated(), st.lists(st.binary(max_size=48), min_size=1, max_size=4)), min_size=1, max_size=12))
def test_detector_receive_loop_keeps_running_on_fuzzed_messages(detector_stage, batch):
    stage, push, pull = detector_stage
    stream_id = f"{VALID_STREAM}-{next(_example)}"
    bad_before = stage.stats.bad_messages
    sent_bad = 0
    for parts in _not_for(VALID_STREAM, batch):
        sent_bad += _decodes_or_protocol_error(parts) is None
        push.send_multipart(parts)
    image = np.zeros((8, 8, 3), np.uint8)
    push.send_multipart(messages.encode(messages.StreamStarted(stream_id, "x", 8, 8, 25.0, False, 3)))
    for i in range(3):
        push.send_multipart(messages.encode(messages.FrameMessage(Frame(stream_id, i, i / 25.0, image), i)))
    push.send_multipart(messages.encode(messages.StreamEnded(stream_id, 3)))
    frames, controls = [], []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(isinstance(c, messages.StreamEnded) and c.stream_id == stream_id
                                                  for c in controls):
        frames += [(frame.stream_id, seq) for frame, seq in stage._receive_batch()]
        if stage._rings is not None:
            stage._rings.release_all()  # what process() does after each batch
        while pull.poll(0):
            message = _decodes_or_protocol_error(pull.recv_multipart())
            assert message is not None, "the detector forwarded a message that does not decode"
            controls.append(message)
    assert [seq for sid, seq in frames if sid == stream_id] == [0, 1, 2]
    ours = [c for c in controls if c.stream_id == stream_id]
    assert [type(c) for c in ours] == [messages.StreamStarted, messages.StreamEnded]
    assert ours[0].classes == ("a", "b")
    assert stage.stats.bad_messages >= bad_before + sent_bad


@pytest.fixture(scope="module")
def resend_listener(tmp_path_factory):
    """A file grabber's resend listener (``vidtrack worker grabber``), its grabber at 50 frames sent."""
    from pipeline.standalone import ResendListener
    from tests.helpers import write_test_video
    from workers.grabber import Grabber, GrabberSpec, RewindRequest, SourceConfig

    tmp = tmp_path_factory.mktemp("resend")
    video = write_test_video(tmp / "v.avi", frames=3)
    grabber = Grabber(GrabberSpec(SourceConfig(str(video), VALID_STREAM), f"ipc://{tmp}/f"), rewind=RewindRequest())
    grabber.stats.sent = 50
    done = threading.Event()
    listener = ResendListener(Security(), f"ipc://{tmp}/r", grabber, done)
    yield listener, grabber
    done.set()
    listener._factory.close()


@FUZZ
@given(st.one_of(mutated(), st.lists(st.binary(max_size=48), min_size=1, max_size=4),
                 resend_requests.map(messages.encode),
                 st.builds(messages.ResendRequest, st.just(VALID_STREAM), st.integers(0, 100)).map(messages.encode)))
def test_the_resend_listener_rewinds_only_on_a_valid_request_of_its_stream(resend_listener, parts):
    listener, grabber = resend_listener
    message = _decodes_or_protocol_error(parts)
    valid = isinstance(message, messages.ResendRequest) and message.stream_id == VALID_STREAM and message.seq <= 50
    assert listener.take(parts) == valid
    assert grabber.rewind.take() == ((message.seq, False) if valid else None)
