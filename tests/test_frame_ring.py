"""Frames through a shared-memory ring (wire.frame_ring) and the "shm" frame message."""
import os
import threading
import time

import numpy as np
import pytest

from wire import frame_ring, messages
from wire.frame_ring import RingError, RingReader, RingWriter
from base.types import Frame

pytestmark = pytest.mark.skipif(not frame_ring.available(), reason="no writable /dev/shm on this machine")


@pytest.fixture
def prefix():
    name = f"vidtrack-test{os.getpid()}"
    yield name
    frame_ring.cleanup(name)


def _image(value, shape=(48, 64, 3)):
    return np.full(shape, value, np.uint8)


def test_round_trip_through_the_ring_and_slot_reuse(prefix):
    writer, reader = RingWriter(prefix, slots=3), RingReader()
    try:
        sent = []
        for i in range(3):
            ring, slot = writer.put(_image(i))
            sent.append((ring, slot))
        assert sorted(s for _, s in sent) == [0, 1, 2] and len({r for r, _ in sent}) == 1
        views = [reader.view(r, s, (48, 64, 3)) for r, s in sent]
        assert [int(v[0, 0, 0]) for v in views] == [0, 1, 2]
        del views
        reader.release_all()
        # freed slots are reused: no new ring, the pixels are the new frame's
        ring, slot = writer.put(_image(7))
        assert ring == sent[0][0] and len(writer.rings) == 1
        assert int(reader.view(ring, slot, (48, 64, 3))[5, 5, 1]) == 7
    finally:
        reader.close()
        writer.close()
    assert not [e for e in os.listdir(frame_ring.SHM_DIR) if e.startswith(prefix)]


def test_any_valid_stream_id_makes_a_valid_ring_name(prefix):
    """Ring names carry the stream id: the longest id with dots still gets a ring."""
    writer = RingWriter(f"{prefix}-{'cam.1_x-' * 8}", slots=1)
    try:
        assert writer.put(_image(1)) is not None and not writer.disabled
    finally:
        writer.close()


def test_a_full_ring_blocks_until_a_slot_is_released(prefix):
    writer, reader = RingWriter(prefix, slots=2), RingReader()
    try:
        held = [writer.put(_image(i)) for i in range(2)]
        for ring, slot in held:
            reader.view(ring, slot, (48, 64, 3))
        got = []
        thread = threading.Thread(target=lambda: got.append(writer.put(_image(9))))
        thread.start()
        time.sleep(0.3)
        assert not got, "put() returned while every slot was still held"
        reader.release_all()
        thread.join(5)
        assert got and got[0] is not None and got[0][0] == held[0][0]
    finally:
        reader.close()
        writer.close()


def test_a_waiting_writer_backs_off_to_max_pause(prefix, monkeypatch):
    """While every slot is held the writer re-checks after pauses that double from
    MIN_PAUSE_S up to max_pause_s (not a fixed fast poll), and takes the slot once freed."""
    writer, reader = RingWriter(prefix, slots=1, max_pause_s=0.004), RingReader()
    pauses = []
    try:
        ring, slot = writer.put(_image(1))
        reader.view(ring, slot, (48, 64, 3))

        def fake_sleep(seconds):
            pauses.append(seconds)
            if len(pauses) == 8:
                reader.release_all()

        monkeypatch.setattr(frame_ring.time, "sleep", fake_sleep)
        assert writer.put(_image(2)) == (ring, slot)
        assert pauses == [0.0005, 0.001, 0.002, 0.004, 0.004, 0.004, 0.004, 0.004]
    finally:
        reader.close()
        writer.close()


def test_a_stalled_ring_is_replaced_then_frames_go_inline(prefix):
    """Slots held by a reader that never frees them (a crashed detector): after stall_s the
    writer starts a fresh ring, and after max_rings it sends frames inline (None)."""
    writer = RingWriter(prefix, slots=1, stall_s=0.2, max_rings=2)
    try:
        first = writer.put(_image(1))
        second = writer.put(_image(2))  # waits 0.2 s, then a second ring
        assert first[0] != second[0] and len(writer.rings) == 2
        assert writer.put(_image(3)) is None and writer.disabled
        assert writer.put(_image(4)) is None  # inline from now on, without waiting
    finally:
        writer.close()


def test_frames_larger_than_a_slot_go_inline(prefix):
    writer = RingWriter(prefix, slots=2)
    try:
        assert writer.put(_image(1, (10, 10, 3))) is not None
        assert writer.put(_image(1, (20, 20, 3))) is None
    finally:
        writer.close()


def test_shm_frame_message_round_trip(prefix):
    writer, reader = RingWriter(prefix, slots=2), RingReader()
    try:
        image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        slot = writer.put(image)
        parts = messages.encode(messages.FrameMessage(Frame("s", 5, 0.2, image), 5, "shm", slot))
        assert len(parts[1]) == 0  # no pixels in the message
        decoded = messages.decode(parts, reader)
        frame, seq = decoded.frame, decoded.seq
        assert seq == 5 and frame.index == 5 and decoded.ring_slot == slot
        np.testing.assert_array_equal(frame.image, image)
        # a receiver that does not accept shared memory refuses the message
        with pytest.raises(messages.ProtocolError, match="does not accept"):
            messages.decode(parts)
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize("change, message", [
    ({"ring": "../etc/passwd"}, "bad ring name"),
    ({"ring": "vidtrack-does-not-exist"}, "cannot open ring"),
    ({"slot": 2}, "out of range"),
    ({"shape": [100, 100, 3]}, "does not fit"),
])
def test_bad_shm_frame_messages_are_rejected(prefix, change, message):
    import json

    writer, reader = RingWriter(prefix, slots=2), RingReader()
    try:
        slot = writer.put(_image(1))
        parts = messages.encode(messages.FrameMessage(Frame("s", 0, 0.0, _image(1)), 0, "shm", slot))
        header = json.loads(parts[0])
        header.update(change)
        with pytest.raises(messages.ProtocolError, match=message):
            messages.decode([json.dumps(header).encode(), b""], reader)
    finally:
        reader.close()
        writer.close()


def test_a_file_that_is_not_a_ring_is_rejected(prefix):
    path = os.path.join(frame_ring.SHM_DIR, f"{prefix}-fake")
    with open(path, "wb") as fh:
        fh.write(b"\0" * 4096)
    with pytest.raises(RingError, match="bad header"):
        RingReader().view(f"{prefix}-fake", 0, (4, 4, 3))


def test_cleanup_removes_rings_left_by_killed_grabbers(prefix):
    writer = RingWriter(prefix, slots=1)
    writer.put(_image(1))
    leftover = writer.rings[0].path
    assert os.path.exists(leftover)
    assert frame_ring.cleanup(prefix) == 1 and not os.path.exists(leftover)


def test_reserve_gives_a_writable_slot_and_cancel_frees_it(prefix):
    writer, reader = RingWriter(prefix, slots=2), RingReader()
    try:
        name, slot, view = writer.reserve((48, 64, 3))
        view[:] = 9  # a decoder writes the frame in place
        assert int(reader.view(name, slot, (48, 64, 3))[10, 10, 2]) == 9
        reader.release_all()
        name2, slot2, _ = writer.reserve((48, 64, 3))
        writer.cancel(name2, slot2)  # nothing was written: the slot is free again at once
        assert writer.reserve((48, 64, 3))[1] == slot2
        assert writer.reserve((480, 640, 3)) is None  # larger than a slot: inline
    finally:
        reader.close()
        writer.close()


def test_taken_slots_are_freed_by_release_and_their_ring_stays_mapped(prefix):
    """The detector's prefetch thread takes a gathered batch's slots while the network thread
    still holds the previous batch's; each batch is freed on its own."""
    writer, reader = RingWriter(prefix, slots=4), RingReader()
    try:
        sent = [writer.put(_image(i)) for i in range(4)]
        ring = writer.rings[0]
        for r, s in sent[:2]:
            reader.view(r, s, (48, 64, 3))
        first = reader.take_held()
        for r, s in sent[2:]:
            reader.view(r, s, (48, 64, 3))
        second = reader.take_held()
        assert reader.held == [] and list(ring.states) == [1, 1, 1, 1]
        reader.MAX_OPEN = 0  # any new ring now forgets an old one: never one with taken slots
        reader._forget_one()
        assert sent[0][0] in reader.open
        assert reader.release(first) == 2
        assert sorted(int(x) for x in ring.states) == [0, 0, 1, 1]
        assert ring.states[sent[0][1]] == 0 and ring.states[sent[2][1]] == 1
        reader.release_all()  # frees what was taken and not yet released
        assert list(ring.states) == [0, 0, 0, 0]
        assert reader.release(second) == 2  # a second release is harmless
    finally:
        reader.close()
        writer.close()
