"""The detector stage over real sockets with a real (small, untrained) Keras model."""
import os
import threading
import time

import numpy as np
import pytest
import zmq

from detector.appearance import ColourHistogramEmbedder
from detector.model import build_model
from detector.runtime import Detector
from workers.detector_config import DetectorConfig
from workers.detector_worker import DetectorStage, DetectorStageSpec
from wire import messages
from tests.helpers import start_catching
from base.types import Frame

ANCHORS = [[[10, 14], [23, 27], [37, 58]], [[81, 82], [135, 169], [344, 319]]]


@pytest.fixture(scope="module")
def detector():
    model = build_model(3, ANCHORS, input_size=(96, 128), class_names=["a", "b", "c"], width=8)
    return Detector.from_model(model, conf_threshold=0.0)  # every candidate passes: real boxes to embed


@pytest.fixture
def sockets(tmp_path):
    """(frames endpoint, detections endpoint, PUSH socket into the stage, PULL socket out of it)."""
    frames_ep, dets_ep = f"ipc://{tmp_path}/f", f"ipc://{tmp_path}/d"
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.bind(frames_ep)
    pull = ctx.socket(zmq.PULL)
    pull.bind(dets_ep)
    yield frames_ep, dets_ep, push, pull
    push.close(0)
    pull.close(0)
    ctx.term()


def _warp_of(stream: str, seq: int) -> np.ndarray:
    """A distinct camera warp per frame (the identity for seq 0)."""
    return np.array([[1, 0, 1.5 * seq + (stream == "b")], [0, 1, -0.25 * seq]], np.float32)


@pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "one-thread"])
def test_batches_frames_from_several_streams_and_drops_bad_messages(sockets, detector, prefetch):
    frames_ep, dets_ep, push, pull = sockets
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    prefetch_cpus = allowed[-1:] or None  # one CPU: the prefetch thread is kept to it
    spec = DetectorStageSpec([frames_ep], dets_ep, DetectorConfig(batch_size=4, batch_wait_ms=50, prefetch=prefetch),
                             prefetch_cpus=prefetch_cpus)
    stop = threading.Event()
    stage = DetectorStage(spec, detector, ColourHistogramEmbedder(), stop)
    thread = threading.Thread(target=stage.run)
    thread.start()
    try:
        rng = np.random.default_rng(0)
        push.send_multipart(messages.encode(messages.StreamStarted("a", source="x", width=64, height=48,
                                                                   fps=25.0, live=False, frames=2)))
        push.send_multipart([b"garbage", b"x"])  # not JSON
        bad = messages.encode(messages.FrameMessage(Frame("a", 0, 0.0, np.zeros((48, 64, 3), np.uint8)), 0))
        push.send_multipart([bad[0], b"short"])  # byte length does not match the shape
        for stream, seq in (("a", 0), ("b", 0), ("a", 1), ("b", 1)):
            image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            warp = _warp_of(stream, seq)  # the grabber's camera motion goes on into the detections
            push.send_multipart(messages.encode(messages.FrameMessage(Frame(stream, seq, seq / 25, image), seq,
                                                                      warp=warp)))
        received = []
        deadline = time.monotonic() + 60
        while len(received) < 5 and time.monotonic() < deadline:
            if pull.poll(200):
                received.append(pull.recv_multipart())
        prefetchers = [t for t in threading.enumerate() if t.name == "detector-prefetch"]
        assert len(prefetchers) == (1 if prefetch else 0)
        if prefetch and prefetch_cpus:
            assert sorted(os.sched_getaffinity(prefetchers[0].native_id)) == prefetch_cpus
    finally:
        stop.set()
        thread.join(10)
    control = messages.decode(received[0])
    assert isinstance(control, messages.StreamStarted) and control.classes == ("a", "b", "c")
    assert (control.source, control.width, control.height, control.frames) == ("x", 64, 48, 2)
    dets = [messages.decode(parts) for parts in received[1:]]
    assert sorted((d.stream_id, d.seq) for d in dets) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    for d in dets:
        np.testing.assert_array_equal(d.warp, _warp_of(d.stream_id, d.seq))
        assert len(d.detections) > 0
        norms = np.linalg.norm(d.detections.embeddings, axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)
        boxes = d.detections.boxes
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 48).all()
    assert stage.stats.bad_messages == 2
    assert stage.stats.frames == 4 and stage.stats.batches <= 2  # batched across streams
    assert stage.stats.prepare_s > 0 and stage.stats.busy_s > 0
    assert not [t for t in threading.enumerate() if t.name == "detector-prefetch"]  # ended with the stage


def test_detector_threads_leave_a_core_for_decoding():
    from workers.detector_worker import detector_threads

    assert detector_threads(0, cpu_count=2) == 1
    assert detector_threads(0, cpu_count=16) == 15
    assert detector_threads(0, cpu_count=1) == 1
    assert detector_threads(3, cpu_count=2) == 3


def test_configure_threads_sets_tensorflow_and_opencv_pools_alike():
    import subprocess
    import sys

    code = ("from workers.detector_worker import configure_threads; import cv2, tensorflow as tf; "
            "n = configure_threads(1); print(n, cv2.getNumThreads(), tf.config.threading.get_intra_op_parallelism_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split()[-3:] == ["1", "1", "1"]


def test_an_error_in_the_prefetch_thread_ends_the_stage_with_it(sockets, detector):
    """A batch that cannot be letterboxed is not swallowed, whichever of the two threads meets
    the error: the stage's run raises it (the service then restarts the detector process)
    instead of waiting forever."""
    from detector.runtime import BatchPreparation

    class FailingPrepare:
        class_names = detector.class_names

        def start_prepare(self, images):  # fails in whichever thread letterboxes the image
            return BatchPreparation(images, detector.input_size, resize="no such mode")

    frames_ep, dets_ep, push, _ = sockets
    spec = DetectorStageSpec([frames_ep], dets_ep, DetectorConfig(batch_size=2, batch_wait_ms=10))
    stage = DetectorStage(spec, FailingPrepare(), None, threading.Event())
    thread, errors = start_catching(stage.run, ValueError)
    try:
        push.send_multipart(messages.encode(messages.FrameMessage(Frame("a", 0, 0.0, np.zeros((48, 64, 3), np.uint8)), 0)))
        thread.join(30)
    finally:
        stage.stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and "resize mode must be one of" in str(errors[0])


def test_more_streams_than_a_batch_holds_all_get_their_turn(tmp_path, detector):
    """16 grabbers, batches of 4, every socket full: each batch's receive rounds start one
    socket further on, so over 16 batches every stream gets frames (not only the first four)."""
    ctx = zmq.Context()
    pushes, endpoints = [], []
    for i in range(16):
        sock = ctx.socket(zmq.PUSH)
        sock.bind(f"ipc://{tmp_path}/f{i}")
        pushes.append(sock)
        endpoints.append(f"ipc://{tmp_path}/f{i}")
    spec = DetectorStageSpec(endpoints, f"ipc://{tmp_path}/d", DetectorConfig(batch_size=4, batch_wait_ms=50),
                             frame_streams=[f"s{i}" for i in range(16)])
    stage = DetectorStage(spec, detector, None)
    try:
        image = np.zeros((16, 16, 3), np.uint8)
        for i, sock in enumerate(pushes):
            for seq in range(8):
                sock.send_multipart(messages.encode(messages.FrameMessage(Frame(f"s{i}", seq, seq / 25, image), seq)))
        time.sleep(0.5)  # every socket's queue filled
        taken: dict[str, int] = {}
        for _ in range(16):
            for frame, _ in stage._receive_batch():
                taken[frame.stream_id] = taken.get(frame.stream_id, 0) + 1
        assert sorted(taken) == sorted(f"s{i}" for i in range(16)), taken
        assert max(taken.values()) - min(taken.values()) <= 4, taken
    finally:
        stage._factory.close()
        for sock in pushes:
            sock.close(0)
        ctx.term()
