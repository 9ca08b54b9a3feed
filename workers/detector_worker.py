"""Detector stage: pull frames from every grabber, detect in batches, embed, push detections.

Each frame's camera warp (computed by its grabber) goes on unchanged in its detections.
Frames from all streams are gathered into one batch (up to ``batch_size``, waiting at most
``batch_wait_ms`` after the first frame) so the network runs once per batch. Control messages
are forwarded to the tracker unchanged. A malformed message is counted and dropped.

With ``prefetch`` (the default) a second thread receives the next batch and starts its
letterbox while the network runs on the current one, on the CPUs named by ``prefetch_cpus``
(the service gives it the grabbers' and tracker's CPUs, see workers.affinity). The letterbox
of 1080p frames is about a fifth of the stage's CPU time (2.1-2.5 of ~11 ms per frame on the
2-core dev box, bench/pipeline.py's clip). The batch is queued as soon as it is received, and
the network thread, when it is done with the current batch, letterboxes whatever images of
the next one the prefetch thread has not reached (:class:`detector.runtime.BatchPreparation`):
the work goes to whichever CPU is free first, so neither the detector's cores nor the
grabbers' become the bottleneck because of it. At most two batches are held (the one in the
network and the one being prepared), so ring slots stay bounded.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field, replace

import zmq

from wire import messages
from workers.affinity import pin_this_thread
from wire.frame_ring import RingReader
from wire.transport import Security, SocketFactory
from base.paths import resolve_model
from workers.detector_config import DetectorConfig
from workers.meter import StageMeter

log = logging.getLogger(__name__)


def _from_config(name: str) -> property:
    return property(lambda spec: getattr(spec.detector, name), doc=f"``detector.{name}``")


@dataclass
class DetectorStageSpec:
    """Everything one detector process needs (picklable): the ``[detector]`` settings and
    what the service decides at start (endpoints, security, threads, CPUs)."""

    frame_endpoints: list[str]
    detections_endpoint: str
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    hwm: int = 4  # transport.hwm
    security: Security = field(default_factory=Security)
    threads: int = 0  # TensorFlow intra-op threads, 0 = auto (see detector_threads)
    prefetch_cpus: list[int] | None = None  # CPUs for the prefetch thread (None: the process's own)
    # the stream id each frame endpoint carries (same order): anything else arriving there is
    # dropped and counted ([]: no check, for tools without a config)
    frame_streams: list[str] = field(default_factory=list)

    # the settings, as the stage reads them
    batch_size = _from_config("batch_size")
    batch_wait_ms = _from_config("batch_wait_ms")
    prefetch = _from_config("prefetch")


@dataclass
class DetectorStats:
    frames: int = 0
    batches: int = 0
    bad_messages: int = 0
    foreign_messages: int = 0  # frames or control of another stream than their socket's (also in bad_messages)
    detections: int = 0
    busy_s: float = 0.0  # network, embeddings and sending (the thread that runs the network)
    prepare_s: float = 0.0  # letterbox into network batches (the prefetch thread, where there is one)
    network_letterbox_frames: int = 0  # prefetch: frames the network thread letterboxed itself
    ring_frames: int = 0  # frames read from shared-memory rings instead of the socket


class Batch(list):
    """A gathered batch: (frame, seq) pairs, their camera warps (float32[2,3], same order,
    copied from the frames into their detections), and when its first message was received
    (``time.monotonic()``: the stage's latency of its frames starts there)."""

    received_at: float = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.warps: list = []


def detector_threads(configured: int, cpu_count: int | None = None) -> int:
    """TensorFlow intra-op threads for a detector process: ``configured`` if set, else all
    cores but one, which is left to the grabbers decoding beside it (the service passes the
    number of cores it pinned the detector to, see workers.affinity). Measured on 2 cores
    (bench/pipeline.py): 1 thread gives 38.4 end-to-end frames/s against 33.7 with
    TensorFlow's default of every core, because decode and inference stop preempting
    each other's threads."""
    if configured > 0:
        return configured
    return max(1, (cpu_count or os.cpu_count() or 1) - 1)


def configure_threads(configured: int) -> int:
    """Give TensorFlow's intra-op pool and OpenCV's pool (letterbox resizes, crops) the
    same :func:`detector_threads` count in this process; returns it. OpenCV otherwise
    uses every core for its resizes and its idle workers spin against the grabber's
    decoder (on 2 cores a throwaway profile of the letterbox of 1080p frames showed about
    a quarter less CPU with one OpenCV thread than with two)."""
    import cv2
    import tensorflow as tf

    n = detector_threads(configured)
    tf.config.threading.set_intra_op_parallelism_threads(n)
    cv2.setNumThreads(n)
    return n


def load_models(spec: DetectorStageSpec):
    """Load the detector and the embedder named by the spec."""
    from detector.appearance import load_embedder
    from detector.runtime import Detector

    configure_threads(spec.threads)
    settings = spec.detector
    detector = Detector.load(resolve_model(settings.model), conf_threshold=settings.conf_threshold,
                             iou_threshold=settings.iou_threshold)
    embedder = load_embedder(settings.embedder)
    return detector, embedder


class DetectorStage:
    def __init__(self, spec: DetectorStageSpec, detector, embedder, stop=None, report=None):
        self.spec = spec
        self.detector = detector
        self.embedder = embedder
        self.stop = stop
        self.report = report or (lambda **kw: None)
        self.stats = DetectorStats()
        self.meter = StageMeter()  # per stream frames in and out, bad messages per reason, latency
        self._factory = SocketFactory(spec.security)
        # Each grabber's pipe must be able to hold a whole batch: with the receive queue at
        # hwm=4 a single stream reached the network 3.9 frames at a time (the service's detector
        # stats on bench/pipeline.py's clip: 76 batches for 300 frames; 39 with this).
        # One socket per grabber, so that a message is known to come from its stream's socket;
        # a part larger than the largest frame disconnects its sender before it is read.
        streams = spec.frame_streams or [None] * len(spec.frame_endpoints)
        self._pulls = [(self._factory.connect(zmq.PULL, endpoint, hwm=max(spec.hwm, spec.batch_size),
                                              max_message_bytes=messages.MAX_FRAME_PART_BYTES), stream)
                       for endpoint, stream in zip(spec.frame_endpoints, streams)]
        self._next_socket = 0  # the frame socket the next receive round starts with
        self._poller = zmq.Poller()
        for sock, _ in self._pulls:
            self._poller.register(sock, zmq.POLLIN)
        self._foreign_logged: set[tuple[str, str]] = set()
        self._push = self._factory.connect(zmq.PUSH, spec.detections_endpoint, hwm=spec.hwm * 4)
        # shared-memory frames only come from grabbers on this machine: accepted on ipc sockets only
        ipc_only = all(e.startswith("ipc://") for e in spec.frame_endpoints)
        self._rings = RingReader() if ipc_only else None

    def _receive_batch(self, on_control=None) -> list:
        """Wait up to 100 ms for a first message, then gather what arrives within the batch
        window, taking from the grabbers' sockets in turn. Control messages go to
        ``on_control(control, parts)`` (default: forwarded); the batch is a list of (frame, seq)."""
        on_control = on_control or self._forward
        batch = Batch()
        if not self._poller.poll(100):
            return batch
        batch.received_at = time.monotonic()
        deadline = time.monotonic() + self.spec.batch_wait_ms / 1000.0
        while len(batch) < self.spec.batch_size:
            if not self._receive_round(batch, on_control):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._poller.poll(max(1, int(remaining * 1000))):
                    break
        return batch

    def _receive_round(self, batch: list, on_control) -> bool:
        """Take at most one message from each frame socket (until the batch is full); False
        when none had one."""
        got = False
        # each round starts one socket further on: with more streams than a batch holds, the
        # first ones in the list would otherwise fill every batch (16 live streams, batches
        # of 8: streams 9-16 got 5 frames each in a minute, streams 1-8 got 253)
        start = self._next_socket
        self._next_socket = (start + 1) % len(self._pulls)
        for sock, stream in self._pulls[start:] + self._pulls[:start]:
            if len(batch) >= self.spec.batch_size:
                break
            try:
                parts = sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                continue
            got = True
            message = self._decode(parts, stream)
            if isinstance(message, messages.FrameMessage):
                batch.append((message.frame, message.seq))
                batch.warps.append(message.warp)
                self.meter.count("frames_in", message.stream_id)
            elif message is not None:
                on_control(message, parts)
        return got

    def _forward(self, control: messages.ControlMessage, parts) -> None:
        """Pass a control message on at once; ``stream.started`` gains the model's class names."""
        if isinstance(control, messages.StreamStarted):
            parts = self._with_class_names(control, parts)
        self._push.send_multipart(parts, copy=False)

    def _with_class_names(self, started: messages.StreamStarted, parts) -> list:
        """``started`` with the model's class names; unchanged (logged) if the names do not fit
        the protocol's bounds, so that a model with odd names only loses the names."""
        try:
            return messages.encode(replace(started, classes=tuple(str(c) for c in self.detector.class_names)))
        except messages.ProtocolError as exc:
            log.warning("stream.started of %s forwarded without class names: %s", started.stream_id, exc)
            return parts

    def _decode(self, parts, stream: str | None = None) -> messages.FrameMessage | messages.ControlMessage | None:
        """The frame or control message of ``parts`` (of stream ``stream``, where the socket
        has one); None (counted, logged) for anything else."""
        try:
            message = messages.decode(parts, self._rings)
        except messages.ProtocolError as exc:
            self.stats.bad_messages += 1
            self.meter.count("bad_messages", "malformed")
            log.warning("dropped a bad message: %s", exc)
            return None
        if not isinstance(message, (messages.FrameMessage, *messages.CONTROL_MESSAGES.values())):
            self.stats.bad_messages += 1
            self.meter.count("bad_messages", "wrong_type")
            log.warning("dropped a %s message: the detector takes frames and control only", message.TYPE)
            return None
        if stream is not None and message.stream_id != stream:
            self._drop_foreign(message, stream)
            return None
        return message

    def _drop_foreign(self, message, stream: str) -> None:
        """Count (and log once per pair of ids) a message of another stream on ``stream``'s socket."""
        self.stats.bad_messages += 1
        self.stats.foreign_messages += 1
        # a shared-memory slot it named is held with the batch's and freed with them
        key = (stream, message.stream_id)
        if key not in self._foreign_logged and len(self._foreign_logged) < 1000:
            self._foreign_logged.add(key)
            log.warning("dropping messages of stream %r arriving on the frame socket of stream %r",
                        message.stream_id, stream)

    def process(self, batch) -> None:
        """Detect, embed and send one gathered batch, then free its ring slots."""
        try:
            start = time.perf_counter()
            prepared = self.detector.prepare([frame.image for frame, _ in batch])
            self.stats.prepare_s += time.perf_counter() - start
            self._process(batch, prepared)
        finally:
            if self._rings is not None:
                self.stats.ring_frames += len(self._rings.held)
                self._rings.release_all()  # the batch's frames are no longer read: grabbers may reuse the slots

    def _process(self, batch, prepared) -> None:
        start = time.perf_counter()
        results = self.detector.detect_prepared(prepared)
        if self.embedder is not None:
            embeddings = self.embedder.embed([frame.image for frame, _ in batch], [d.boxes for d in results])
            for det, emb in zip(results, embeddings):
                det.embeddings = emb
        warps = getattr(batch, "warps", None) or [messages.identity_warp()] * len(batch)
        for (frame, seq), det, warp in zip(batch, results, warps):
            msg = messages.DetectionsMessage(frame.stream_id, seq, frame.index, frame.timestamp, det, warp)
            self._push.send_multipart(messages.encode(msg), copy=False)
            self.stats.detections += len(det)
            self.meter.count("frames_out", frame.stream_id)
        received_at = getattr(batch, "received_at", 0.0)
        if received_at:  # receipt of the batch's first message to its detections sent, per frame
            latency = time.monotonic() - received_at
            for _ in batch:
                self.meter.observe("frame", latency)
        self.stats.frames += len(batch)
        self.stats.batches += 1
        self.stats.busy_s += time.perf_counter() - start

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def run(self) -> DetectorStats:
        last_report = time.monotonic()
        try:
            if self.spec.prefetch:
                self._run_prefetched()
            else:
                while not self._stopped():
                    batch = self._receive_batch()
                    if batch:
                        self.process(batch)
                    if time.monotonic() - last_report > 1.0:
                        self.report(event="stats", **vars(self.stats))
                        last_report = time.monotonic()
                    self.meter.report_if_due(self.report)
        finally:
            self.report(event="stats", **vars(self.stats))
            self.meter.report_if_due(self.report, force=True)
            self._factory.close()
            if self._rings is not None:
                self._rings.close()
        return self.stats

    def _run_prefetched(self) -> None:
        """This thread runs the network, embeds and sends; a prefetch thread receives and
        letterboxes the next batch meanwhile. Items reach this thread in arrival order."""
        items: queue.Queue = queue.Queue()
        slots = threading.Semaphore(2)  # batches held: one in the network, one prepared
        done = threading.Event()
        thread = threading.Thread(target=self._prefetch, args=(items, slots, done), name="detector-prefetch",
                                  daemon=True)
        thread.start()
        last_report = time.monotonic()
        try:
            while not self._stopped():
                if time.monotonic() - last_report > 1.0:
                    self.report(event="stats", **vars(self.stats))
                    last_report = time.monotonic()
                self.meter.depth("prefetched_batches", items.qsize())
                self.meter.report_if_due(self.report)
                try:
                    item = items.get(timeout=0.1)
                except queue.Empty:
                    if not thread.is_alive():
                        raise RuntimeError("the detector's prefetch thread stopped")
                    continue
                kind = item[0]
                if kind == "control":
                    self._forward(item[1], item[2])
                elif kind == "error":
                    raise item[1]
                else:
                    _, batch, preparation, taken = item
                    try:
                        # what the prefetch thread has not letterboxed yet is done here
                        self.stats.network_letterbox_frames += preparation.work()
                        self._process(batch, preparation.result())
                    finally:
                        if self._rings is not None:
                            self.stats.ring_frames += self._rings.release(taken)
                        slots.release()
        finally:
            done.set()
            thread.join(timeout=5.0)

    def _prefetch(self, items: queue.Queue, slots: threading.Semaphore, done: threading.Event) -> None:
        pin_this_thread(self.spec.prefetch_cpus, "the detector's prefetch thread")
        try:
            while not done.is_set():
                if not slots.acquire(timeout=0.1):
                    continue
                batch = self._receive_batch(lambda control, parts: items.put(("control", control, parts)))
                if not batch:
                    slots.release()
                    continue
                taken = self._rings.take_held() if self._rings is not None else []
                preparation = self.detector.start_prepare([frame.image for frame, _ in batch])
                # queued before its letterbox: a network thread that is free first shares the work
                items.put(("batch", batch, preparation, taken))
                start = time.perf_counter()
                preparation.work()
                self.stats.prepare_s += time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            items.put(("error", exc))


def detector_main(spec: DetectorStageSpec, stop=None, report_queue=None) -> None:
    """Process entry point."""

    def report(**kw):
        if report_queue is not None:
            report_queue.put({"stage": "detector", "pid": os.getpid(), **kw})

    detector, embedder = load_models(spec)
    report(event="ready")
    DetectorStage(spec, detector, embedder, stop, report).run()
