"""Pipeline benchmark: do the stages overlap, and does the transport cost anything?

Prints, in one run on one clip (default: ../shared/data/videos/towncentre-1080p.mp4):

- decode-only frames/s (OpenCV, the grabber's reader);
- detector-only frames/s (the detector stage's work on frames already in memory: letterbox,
  network, NMS, appearance embeddings; batches as configured);
- detector-only frames/s again while a separate process decodes the clip, each on the CPUs
  the service would give it (``detector.pin_cpus``): on a machine where decode and inference
  share the last-level cache and memory this is what the detector can reach in the service;
- end-to-end frames/s of the real service (grabber, detector and tracker processes over ipc),
  steady state from the first tracked frame to the last, with frames in a shared-memory ring
  (the default), with the pixels through the socket (``transport.shared_memory = false``),
  without the detector on cores of its own (``detector.pin_cpus = false``) and without the
  next batch letterboxed on a second thread (``detector.prefetch = false``);
- per process of the end-to-end run (grabber, detector, tracker, supervisor), in the steady
  state: CPU ms, ms spent runnable but waiting for a core, and time slices, per frame
  (Linux /proc schedstat): where the detector stage loses time to its neighbours (the detector
  row includes its prefetch thread, which runs on the grabbers' cores and waits for them);
- frame-message throughput over ipc (PUSH/PULL between two threads, raw frames of the clip's
  size) in GB/s, pixels through the socket (zero-copy send) and through the shared-memory
  ring, against a plain memory copy of the same frames.

Target (issue 2): end-to-end >= 0.9 x min(decode, detector). Decode-only, detector-only and
end-to-end (ring) are measured in ``--rounds`` interleaved rounds (default 3), each round's
ratio printed and the ratio of the medians as the result; the rest is measured once.

    .venv/bin/python bench/pipeline.py [--video PATH] [--frames N] [--model default] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import zmq  # noqa: E402

from workers.sources import VideoSource  # noqa: E402

DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "videos" / "towncentre-1080p.mp4"


def read_frames(video: str, limit: int, keep: bool = True) -> tuple[list[np.ndarray], float, float]:
    """Decode up to ``limit`` frames; returns them (none with ``keep=False``), the
    decode-only frames/s and the CPU seconds per frame (all threads of this process)."""
    source = VideoSource(video)
    frames, count = [], 0
    cpu0 = time.process_time()
    start = time.perf_counter()
    while count < limit:
        item = source.read()
        if item is None:
            break
        count += 1
        if keep:
            frames.append(item[1])
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    source.close()
    return frames, count / elapsed, cpu / max(count, 1)


def detector_fps(frames, model: str, embedder: str, batch: int, threads: int) -> tuple[float, float, float]:
    """Frames/s of the detector stage's work on frames in memory, CPU seconds per frame, and
    seconds per frame its threads spent runnable but waiting for a core."""
    from detector.appearance import load_embedder
    from detector.runtime import Detector
    from base.paths import resolve_model

    from workers.detector_worker import configure_threads

    configure_threads(threads)
    det = Detector.load(resolve_model(model))
    emb = load_embedder(embedder)
    det.detect(frames[:batch])  # warm-up: build the graph for this batch size
    cpu0 = time.process_time()
    wait0 = run_queue_wait_ns(os.getpid())
    start = time.perf_counter()
    for i in range(0, len(frames), batch):
        chunk = frames[i:i + batch]
        results = det.detect(chunk)
        if emb is not None:
            emb.embed(chunk, [r.boxes for r in results])
    elapsed = time.perf_counter() - start
    n = len(frames)
    return n / elapsed, (time.process_time() - cpu0) / n, (run_queue_wait_ns(os.getpid()) - wait0) / 1e9 / n


def thread_schedstats(pid: int) -> dict[int, tuple[int, int, int]] | None:
    """{tid: (on-CPU ns, run-queue wait ns, time slices)} of a process's threads, from Linux's
    /proc/<pid>/task/<tid>/schedstat; None if the process is gone or the files are absent. A
    thread that ends between listing and reading is left out."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    threads = {}
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
            threads[int(tid)] = (int(fields[0]), int(fields[1]), int(fields[2]))
        except (OSError, ValueError, IndexError):
            continue
    return threads


def run_queue_wait_ns(pid: int) -> int:
    """Nanoseconds a process's threads have spent runnable but waiting for a core (0 where unknown)."""
    return sum(wait for _, wait, _ in (thread_schedstats(pid) or {}).values())


DECODE_LOOP = """
import sys, time
sys.path.insert(0, {repo!r})
from workers.sources import VideoSource
while True:
    source = VideoSource({video!r})
    while source.read() is not None:
        pass
    source.close()
"""


def detector_fps_beside_decoder(frames, video: str, model: str, embedder: str, batch: int, threads: int):
    """Detector-only frames/s while another process decodes ``video`` in a loop, each kept to
    the CPUs the service would give it (workers.affinity: the decoder to the grabbers' CPUs,
    this loop to the detector's): the rate the detector can reach inside the service on this
    machine, where decode runs at the same time on the other cores and both share the last-level
    cache and memory bandwidth. Returns (frames/s, {"detector": cpus, "decoder": cpus})."""
    import subprocess

    from workers.affinity import allowed_cpus, pin_this_process, plan_cpus

    allowed = allowed_cpus()
    plan = plan_cpus(allowed, 1)
    code = DECODE_LOOP.format(repo=str(REPO), video=video)
    decoder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if plan is not None:
            os.sched_setaffinity(decoder.pid, plan.others)  # before it starts its decoding threads
            pin_this_process(plan.detector)
        time.sleep(1.0)  # let it open the file and reach steady decoding
        fps = detector_fps(frames, model, embedder, batch, threads)[0]
    finally:
        decoder.kill()
        decoder.wait()
        if plan is not None:
            pin_this_process(allowed)
    cpus = {"detector": sorted(plan.detector), "decoder": sorted(plan.others)} if plan is not None else {}
    return fps, cpus


class ProcessSampler:
    """Samples, every ``interval_s``, each process of this process tree's total on-CPU time,
    run-queue wait (runnable but not running) and time slices, summed over its threads, from
    Linux's /proc/<pid>/task/<tid>/schedstat (nanoseconds). Does nothing where that file is absent."""

    def __init__(self, interval_s: float = 0.25):
        self.interval_s = interval_s
        self.snapshots: list[tuple[float, dict[int, tuple[int, int, int]]]] = []
        self.available = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/schedstat")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        if self.available:
            self._thread.join()

    def _run(self) -> None:
        while not self._done.is_set():
            self.snapshots.append((time.monotonic(), self._snapshot()))
            self._done.wait(self.interval_s)

    @staticmethod
    def _descendants() -> set[int]:
        parents = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    stat = Path(f"/proc/{name}/stat").read_text()
                    parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    pass
        tree, grew = {os.getpid()}, True
        while grew:
            new = {pid for pid, parent in parents.items() if parent in tree and pid not in tree}
            tree |= new
            grew = bool(new)
        return tree

    def _snapshot(self) -> dict[int, dict[int, tuple[int, int, int]]]:
        """{pid: :func:`thread_schedstats`} of the tree (a thread's time since the last
        snapshot is lost if it ends in between)."""
        stats = {pid: thread_schedstats(pid) for pid in self._descendants()}
        return {pid: threads for pid, threads in stats.items() if threads is not None}

    def per_frame(self, roles: dict[int, str], start: float, end: float, frames_per_s: float) -> dict[str, tuple]:
        """{role: (CPU ms/frame, run-queue wait ms/frame, time slices/frame)} between the
        snapshots nearest to ``start`` and ``end`` (time.monotonic()); a thread started in
        between counts from zero."""
        if len(self.snapshots) < 2:
            return {}
        a = min(self.snapshots, key=lambda x: abs(x[0] - start))
        b = min(self.snapshots, key=lambda x: abs(x[0] - end))
        frames = frames_per_s * (b[0] - a[0])
        if frames <= 0:
            return {}
        out = {}
        for pid, role in roles.items():
            if pid not in a[1] or pid not in b[1]:
                continue
            run = wait = slices = 0
            for tid, (r1, w1, s1) in b[1][pid].items():
                r0, w0, s0 = a[1][pid].get(tid, (0, 0, 0))
                run, wait, slices = run + r1 - r0, wait + w1 - w0, slices + s1 - s0
            prev = out.get(role, (0.0, 0.0, 0.0))
            out[role] = (prev[0] + run / 1e6 / frames, prev[1] + wait / 1e6 / frames, prev[2] + slices / frames)
        return out


def end_to_end_fps(video: str, frames: int, model: str, embedder: str, batch: int, threads: int,
                   shared_memory: bool = True, pin_cpus: bool = True, prefetch: bool = True):
    from pipeline.config import Config, SourceConfig
    from pipeline.service import Service

    config = Config(sources=[SourceConfig(url=video, id="bench", max_frames=frames)])
    config.detector.model = model
    config.detector.embedder = embedder
    config.detector.batch_size = batch
    config.detector.threads = threads
    config.transport.shared_memory = shared_memory
    config.detector.pin_cpus = pin_cpus
    config.detector.prefetch = prefetch
    config.output.dir = None
    config.output.progress = False
    config.events.endpoint = "ipc:///tmp/vidtrack-bench-events"
    service = Service(config)
    with ProcessSampler() as sampler:
        summary = service.run()
    roles = {os.getpid(): "supervisor", service.tracker.pid: "tracker"}
    roles.update({p.pid: "detector" for p in service.detectors.values()})
    roles.update({p.pid: "grabber" for p in service.grabbers.values()})
    processes = {}
    if summary.first_frame_at is not None and summary.last_frame_at is not None:
        processes = sampler.per_frame(roles, summary.first_frame_at, summary.last_frame_at, summary.steady_fps)
    return summary.steady_fps, summary, processes


def print_processes(processes: dict, e2e_fps: float) -> None:
    """The steady-state table: where each process's time went, per tracked frame."""
    if not processes:
        print("  (per-process CPU not available: no /proc/<pid>/schedstat)")
        return
    for role, (cpu, wait, slices) in processes.items():
        print(f"  {role:<10} CPU {cpu:5.2f} ms/frame, runnable but waiting for a core {wait:5.2f} ms/frame, "
              f"{slices:4.1f} time slices/frame")
    total = sum(x[0] for x in processes.values())
    print(f"  all        CPU {total:5.2f} ms/frame = {total * e2e_fps / 1e3:.2f} of "
          f"{os.cpu_count()} cores at the end-to-end rate")


def busy_ms(summary) -> tuple[float, float, float]:
    """The service's detector stage on its batches, from the stage's own stats: (network, NMS,
    embeddings and sending, ms/frame; letterbox on the prefetch thread, or on the one thread
    without prefetch, ms/frame; share of the frames the network thread letterboxed itself)."""
    d = summary.detector
    frames = max(d.get("frames", 0), 1)
    return (1e3 * d.get("busy_s", 0.0) / frames, 1e3 * d.get("prepare_s", 0.0) / frames,
            d.get("network_letterbox_frames", 0) / frames)


def ipc_throughput(frame: np.ndarray, seconds: float = 2.0, ring: bool = False) -> float:
    """GB/s of frame messages over ipc (zero-copy send, receive into a frame; with ``ring``
    the pixels go through a shared-memory frame ring of 8 slots)."""
    from wire import frame_ring, messages
    from base.types import Frame

    writer = frame_ring.RingWriter("vidtrack-bench", 8) if ring else None
    reader = frame_ring.RingReader() if ring else None

    endpoint = "ipc:///tmp/vidtrack-bench-frames"
    ctx = zmq.Context()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.sndhwm = pull.rcvhwm = 4
    push.bind(endpoint)
    pull.connect(endpoint)
    count = [0]
    done = threading.Event()

    def receive():
        while not done.is_set() or pull.poll(0):
            if pull.poll(100):
                decoded = messages.decode(pull.recv_multipart(copy=False), reader).frame
                assert decoded.image.shape == frame.shape
                if reader is not None:
                    assert writer.rings, "the shared-memory ring could not be made"
                    reader.release_all()
                count[0] += 1

    thread = threading.Thread(target=receive)
    thread.start()
    start = time.perf_counter()
    sent = 0
    while time.perf_counter() - start < seconds:
        slot = writer.put(frame) if writer is not None else None
        message = messages.FrameMessage(Frame("b", sent, 0.0, frame), sent, "raw" if slot is None else "shm", slot)
        push.send_multipart(messages.encode(message), copy=False)
        sent += 1
    done.set()
    thread.join()
    transport_s = time.perf_counter() - start
    push.close(0)
    pull.close(0)
    ctx.term()
    if writer is not None:
        reader.close()
        writer.close()
    return count[0] * frame.nbytes / transport_s / 1e9


def memcpy_throughput(frame: np.ndarray, seconds: float = 1.0) -> float:
    """GB/s of np.copyto of the frame into another buffer: the limit for the transports."""
    target = np.empty_like(frame)
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        np.copyto(target, frame)
        n += 1
    return n * frame.nbytes / (time.perf_counter() - start) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--model", default="default")
    parser.add_argument("--embedder", default="histogram")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra-op threads (0 = the detector stage's auto choice)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of decode-only, detector-only, end-to-end")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if not Path(args.video).exists():
        print(f"skipped: clip not found at {args.video} (../shared/data is absent)")
        return 0

    frames, _, _ = read_frames(args.video, args.frames)
    h, w = frames[0].shape[:2]
    print(f"clip: {args.video} ({len(frames)} frames, {w}x{h}); model {args.model}, embedder {args.embedder}, "
          f"batch {args.batch}, {os.cpu_count()} CPU cores; {args.rounds} interleaved rounds")
    # This machine's speed drifts between seconds (shared cores), so the three rates of the
    # target are taken in rounds, one after another, and compared round by round and as medians.
    rounds = []
    for r in range(args.rounds):
        # not the first read's rate: keeping the frames costs allocations the grabber does not pay
        _, decode_r, decode_cpu_r = read_frames(args.video, args.frames, keep=False)
        detect_r, detect_cpu_r, detect_wait_r = detector_fps(frames, args.model, args.embedder, args.batch, args.threads)
        e2e_r, summary, processes = end_to_end_fps(args.video, len(frames), args.model, args.embedder, args.batch, args.threads)
        rounds.append((decode_r, decode_cpu_r, detect_r, detect_cpu_r, e2e_r))
        busy = busy_ms(summary)
        print(f"round {r + 1}: decode-only {decode_r:6.1f} ({decode_cpu_r * 1e3:.1f} CPU ms/frame), detector-only "
              f"{detect_r:6.1f} ({detect_cpu_r * 1e3:.1f} CPU ms/frame), end-to-end {e2e_r:6.1f} frames/s "
              f"({summary.frames} frames tracked, {summary.detector.get('ring_frames', 0)} through the shared-memory "
              f"ring; the service's detector busy {busy[0]:.1f} ms/frame on the network thread, letterbox "
              f"{busy[1]:.1f} ms/frame on the prefetch thread, {busy[2]:.0%} of the frames letterboxed by the "
              f"network thread); ratio {e2e_r / min(decode_r, detect_r):.2f}")
        print(f"  detector-only loop: its threads runnable but waiting for a core "
              f"{detect_wait_r * 1e3:5.2f} ms/frame; in the end-to-end run, per process:")
        print_processes(processes, e2e_r)
        print("  CPUs (detector.pin_cpus): " + ", ".join(f"{name} {cpus}" for name, cpus in sorted(summary.cpus.items())))
    decode, decode_cpu, detect, detect_cpu, e2e = (float(np.median([x[i] for x in rounds])) for i in range(5))
    ratios = [x[4] / min(x[0], x[2]) for x in rounds]
    print(f"decode-only      {decode:8.1f} frames/s  ({decode_cpu * 1e3:.1f} CPU ms/frame)   medians of the rounds")
    print(f"detector-only    {detect:8.1f} frames/s  ({detect_cpu * 1e3:.1f} CPU ms/frame)")
    print(f"end-to-end       {e2e:8.1f} frames/s  shared-memory frame ring, the default")
    bound = min(decode, detect)
    print(f"ratio end-to-end / min(decode, detector) = {e2e / bound:.2f} of the medians (target >= 0.90); "
          f"per round {', '.join(f'{x:.2f}' for x in ratios)}: >= 0.90 in {sum(x >= 0.9 for x in ratios)} of {len(ratios)}")
    beside, beside_cpus = detector_fps_beside_decoder(frames, args.video, args.model, args.embedder, args.batch,
                                                      args.threads)
    where = (f"detector on CPUs {beside_cpus['detector']}, decoder on {beside_cpus['decoder']}, as the service "
             f"splits them" if beside_cpus else "unpinned")
    print(f"detector-only    {beside:8.1f} frames/s  while a decoder process runs beside it ({where}; "
          f"{beside / detect:.2f} of the median alone); end-to-end / this = {e2e / beside:.2f}")
    e2e_free, _, processes_free = end_to_end_fps(args.video, len(frames), args.model, args.embedder, args.batch,
                                                 args.threads, pin_cpus=False)
    wait_free = processes_free.get("detector", (0.0, float("nan")))[1]
    print(f"end-to-end       {e2e_free:8.1f} frames/s  with detector.pin_cpus = false (every process on every core; "
          f"the detector runnable but waiting for a core {wait_free:.2f} ms/frame); ratio {e2e_free / bound:.2f}")
    e2e_serial, _, _ = end_to_end_fps(args.video, len(frames), args.model, args.embedder, args.batch, args.threads,
                                      prefetch=False)
    print(f"end-to-end       {e2e_serial:8.1f} frames/s  with detector.prefetch = false (the letterbox on the "
          f"network's thread); ratio {e2e_serial / bound:.2f}")
    transport = ipc_throughput(frames[0])
    transport_ring = ipc_throughput(frames[0], ring=True)
    memcpy = memcpy_throughput(frames[0])
    e2e_socket, summary_socket, _ = end_to_end_fps(args.video, len(frames), args.model, args.embedder, args.batch,
                                                args.threads, shared_memory=False)
    # Each rate above had every core to itself. Run together, decode and detection share the
    # cores, so on a CPU-only machine the end-to-end rate is also bounded by the CPU time
    # both need per frame (the detector on a GPU lifts this bound).
    cpu_bound = (os.cpu_count() or 1) / (decode_cpu + detect_cpu)
    print(f"end-to-end       {e2e_socket:8.1f} frames/s  pixels through the socket "
          f"({summary_socket.frames} frames tracked, {summary_socket.elapsed_s:.1f} s with start-up)")
    print(f"CPU-time bound: {os.cpu_count()} cores / ({decode_cpu * 1e3:.1f} + {detect_cpu * 1e3:.1f}) CPU ms = "
          f"{cpu_bound:.1f} frames/s; end-to-end / CPU-time bound = {e2e / cpu_bound:.2f}; "
          f"serial (no overlap) rate would be {1 / (1 / decode + 1 / detect):.1f} frames/s")
    print(f"ratio with pixels through the socket = {e2e_socket / bound:.2f}; ring / socket = {e2e / e2e_socket:.2f}")
    for label, rate in (("pixels through the socket", transport), ("shared-memory ring", transport_ring)):
        print(f"frame messages over ipc, {label:<26} {rate:6.2f} GB/s vs memory copy {memcpy:6.2f} GB/s "
              f"(ratio {rate / memcpy:.2f}); {w}x{h} frame = {frames[0].nbytes / 1e6:.1f} MB, "
              f"{rate * 1e9 / frames[0].nbytes:.0f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
