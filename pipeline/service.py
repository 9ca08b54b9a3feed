"""Build the process graph from a :class:`~pipeline.config.Config`, supervise it, stop it cleanly.

::

    grabber (1 process per source) --PUSH/PULL--> detector (N processes) --PUSH/PULL--> tracker --PUB--> subscribers

Each grabber binds its own frame socket and every detector connects to all of them, so N
detectors share the work; the tracker binds the detections and the events sockets. Processes
are started with the ``spawn`` method (TensorFlow does not survive ``fork``). Children ignore
SIGINT: on Ctrl-C the supervisor stops the grabbers, which send their end markers, lets the
tracker finish what is in flight, then stops the detectors.

Supervision: the supervisor waits on every child's process sentinel and the report queue at
once, so it sees a death at once whatever the child, logs it with the exit code or signal and
restarts the child after a capped exponential backoff, within a restart budget that recovers
over time (:mod:`pipeline.supervision`). Nothing of a file is lost: the tracker's progress
reports carry each stream's next seq, the acknowledgement. A restarted grabber resumes at the
first unacknowledged frame; when a detector dies, every file grabber is rewound there (the
frames the detector held are sent again, the tracker drops the copies); a restarted tracker
restores its checkpoints and each file grabber is rewound to the checkpoint's seq. A live
grabber restarts with seq and frame numbers ``LIVE_RESUME_GAP`` past the acknowledged ones
(above whatever the dead one may still have in flight; the tracker skips the gap). Out of
budget, a grabber's stream ends with the error; a dead detector or tracker stops the run
with the error (the summary printed, exit code 1).
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import setproctitle

from workers.detector_worker import DetectorStageSpec, detector_main
from wire import frame_ring
from workers.affinity import allowed_cpus, pin_this_process, plan_cpus
from pipeline.channels import Reports, SharedFlag
from pipeline.config import Config, check_config
from pipeline.http_server import MetricsServer, parse_endpoint
from pipeline.metrics import ServiceMetrics
from pipeline.sinks import SinkSettings
from pipeline.supervision import RestartBudget, describe_exit
from workers.tracker_worker import TrackerStageSpec, tracker_main
from base.errors import ConfigError
from wire.transport import Security, check_bind_host, ephemeral_security, is_loopback
from workers.grabber import GrabberSpec, RewindRequest, grabber_main

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 30.0
LIVE_RESUME_GAP = 1024  # frames: more than a dead live grabber can have in flight (queues, batches)


class StageFailed(RuntimeError):
    """A detector or the tracker died more often than its restart budget allows."""


@dataclass
class Child:
    """One supervised stage process: what it is, how to start it again, its restarts."""

    name: str  # the process name: grabber-<id>, detector-<i>, tracker
    kind: str  # "grabber", "detector" or "tracker"
    spec: object
    budget: RestartBudget
    proc: object = None  # the running process; None while a restart waits for its backoff
    started_at: float = 0.0
    restart_at: float = 0.0
    stream: str = ""  # grabbers: the stream id
    live: bool = False
    rewind: RewindRequest | None = None  # file grabbers
    finished: bool = False  # exited cleanly (grabbers, the tracker)


def process_title(name: str) -> str:
    """What ``ps``/``top`` show for a child: ``vidtrack: grabber cam1``, ``vidtrack: detector-0``,
    ``vidtrack: tracker``."""
    if name.startswith("grabber-"):
        name = "grabber " + name[len("grabber-"):]
    return f"vidtrack: {name}"


def _child(target, args: tuple, report_queue, verbose: bool, cpus=None) -> None:
    """Entry point of every child process: name itself, ignore Ctrl-C, keep to ``cpus`` (if
    given) and say which CPUs it runs on, report crashes to the supervisor."""
    setproctitle.setproctitle(process_title(mp.current_process().name))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    report_queue.put({"stage": mp.current_process().name, "event": "cpus", "cpus": pin_this_process(cpus)})
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    try:
        target(args[0], args[1], report_queue, *args[2:])
    except Exception as exc:  # the supervisor decides what a crash means
        report_queue.put({"stage": mp.current_process().name, "event": "crashed",
                          "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
        raise SystemExit(1)
    finally:
        report_queue.flush()  # the last reports (stats, the end) before the process goes


@dataclass
class StreamSummary:
    stream_id: str
    source: str
    frames_total: int = 0  # known frame count of a file, 0 for live sources
    frames_tracked: int = 0
    dropped: int = 0
    reason: str = ""
    error: str = ""
    resends: int = 0  # times the tracker asked for a frame lost without a stage dying


@dataclass
class RunSummary:
    streams: dict[str, StreamSummary] = field(default_factory=dict)
    detector: dict = field(default_factory=dict)
    stages: dict[str, dict] = field(default_factory=dict)  # stage -> its counts (ServiceMetrics.stage_counts)
    restarts: dict[str, int] = field(default_factory=dict)  # process name -> times restarted
    elapsed_s: float = 0.0
    first_frame_at: float | None = None  # time.monotonic() when the tracker finished its first frame
    last_frame_at: float | None = None
    out_dir: str | None = None
    errors: list[str] = field(default_factory=list)
    stopped_by: str = ""  # "SIGINT" / "SIGTERM" when an operator stopped the run
    cpus: dict[str, list[int]] = field(default_factory=dict)  # process name -> the CPUs it ran on

    @property
    def exit_code(self) -> int:
        """0 when every stream ended well (also after a requested stop), 1 when a stream or a
        stage failed."""
        failed = any(s.error for s in self.streams.values())
        return 1 if failed or self.errors else 0

    @property
    def frames(self) -> int:
        return sum(s.frames_tracked for s in self.streams.values())

    @property
    def steady_fps(self) -> float:
        """Frames per second from the first tracked frame to the last (start-up excluded)."""
        if self.first_frame_at is None or self.last_frame_at is None or self.frames < 2:
            return 0.0
        return (self.frames - 1) / max(self.last_frame_at - self.first_frame_at, 1e-9)


class Endpoints:
    """Socket addresses and socket security of one run.

    Every run has a private folder (0700, removed by :meth:`cleanup`): the ipc socket files
    live there, so only this user can connect to them. Over tcp (the stages' sockets or the
    events socket) every socket uses CURVE: with ``security.keys_dir`` its keys, without it
    keys made for the run in the folder (``keys/``; loopback only: binding beyond loopback
    without ``security.keys_dir`` is refused). ``security`` is what the stages use;
    ``keys_dir`` is the folder a subscriber's ``--keys`` names (None: no tcp)."""

    def __init__(self, config: Config):
        t = config.transport
        self._tmp = tempfile.mkdtemp(prefix="vt-")  # mode 0700
        try:
            n = len(config.sources)
            if t.kind == "ipc":
                self.frames = [f"ipc://{self._tmp}/f{i}" for i in range(n)]
                self.detections = f"ipc://{self._tmp}/d"
            else:
                self.detections = f"tcp://{t.host}:{t.base_port}"
                self.frames = [f"tcp://{t.host}:{t.base_port + 1 + i}" for i in range(n)]
            self.events = config.events.endpoint
            self.security = self._security(config.security, t.allow_remote)
        except Exception:
            self.cleanup()  # a refused address leaves no temp folder behind
            raise
        self.keys_dir = self.security.keys_dir

    @property
    def all(self) -> list[str]:
        return [self.detections, self.events, *self.frames]

    def _security(self, security: Security, allow_remote: bool) -> Security:
        for endpoint in self.all:
            check_bind_host(endpoint, allow_remote)
        tcp = [e for e in self.all if e.startswith("tcp://")]
        if security.enabled or not tcp:
            return security
        remote = [e for e in tcp if not is_loopback(e)]
        if remote:
            raise ConfigError(f"security.keys_dir: binding {remote[0]} beyond loopback needs CURVE keys shared "
                              "by the hosts; make them with `vidtrack keys DIR` and set [security] keys_dir")
        return ephemeral_security(self._tmp)

    def cleanup(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


class Service:
    """Runs the whole pipeline for a config until every file source ends or :meth:`stop`."""

    def __init__(self, config: Config, progress: bool | None = None, verbose: bool = False):
        check_config(config)  # a config built in code, or changed after loading, is refused here too
        self.config = config
        self.progress = config.output.progress if progress is None else progress
        self.verbose = verbose
        self.ctx = mp.get_context("spawn")
        self.reports = Reports(self.ctx)  # a pipe per child process
        self.stop_grabbers = SharedFlag(self.ctx)
        self.release_grabbers = SharedFlag(self.ctx)  # the tracker has everything: grabbers may close
        self.stop_detectors = SharedFlag(self.ctx)
        self.stop_tracker = SharedFlag(self.ctx)
        self.endpoints = Endpoints(config)
        self.security = self.endpoints.security  # with the run's own keys where tcp needs them
        self.summary = RunSummary(out_dir=config.output.dir or None)
        self._bars: dict = {}
        self.children: dict[str, Child] = {}
        self.acked: dict[str, int] = {s.id: 0 for s in config.sources}  # the tracker's next seq per stream
        self._failed = False  # a stage ran out of restarts: stop without draining
        self._detector_stats: dict[str, dict] = {}
        self.metrics = ServiceMetrics(processes_up=self._processes_up)
        self.metrics_server: MetricsServer | None = None
        self._children: dict[str, mp.Process] = {}  # process name -> its latest process
        self._ready: set[str] = set()  # names whose latest process reported from its stage
        self.ring_prefix = f"vidtrack-{os.getpid()}-{secrets.token_hex(3)}"
        # detector processes on cores of their own (workers.affinity); None = no pinning
        self.cpu_plan = plan_cpus(allowed_cpus(), len(config.sources)) if config.detector.pin_cpus else None

    def _ring_slots(self, source) -> int:
        """Shared-memory ring slots for a grabber (0 = pixels through the socket): enough for
        the socket queue, the batches every detector holds (two with prefetch: one in the
        network, one prepared) and one being gathered."""
        t, d = self.config.transport, self.config.detector
        if t.kind != "ipc" or not t.shared_memory or source.encoding != "raw":
            return 0
        return t.hwm + (d.workers * (2 if d.prefetch else 1) + 1) * d.batch_size

    # ---- specs: each stage's settings plus what is decided here (endpoints, security, CPUs, rings)
    def _grabber_specs(self) -> list[GrabberSpec]:
        t = self.config.transport
        return [GrabberSpec(s, endpoint=ep, security=self.security, hwm=t.hwm, queue_bytes=int(t.queue_mb * 2**20),
                            ring_slots=self._ring_slots(s), ring_prefix=self.ring_prefix)
                for s, ep in zip(self.config.sources, self.endpoints.frames)]

    def _detector_spec(self) -> DetectorStageSpec:
        d = self.config.detector
        return DetectorStageSpec(
            frame_endpoints=self.endpoints.frames, detections_endpoint=self.endpoints.detections,
            frame_streams=[s.id for s in self.config.sources],
            detector=d, hwm=self.config.transport.hwm, security=self.security,
            threads=d.threads or (max(1, len(self.cpu_plan.detector) // d.workers) if self.cpu_plan else 0),
            # the letterbox of the next batch starts on the grabbers' and tracker's CPUs, and the
            # network thread takes over what is left when it gets there first: the work goes to
            # the side with time to spare. With the whole letterbox fixed on the grabbers' CPUs
            # that side became the bottleneck on a faster day of the dev box; with the thread free
            # to use every CPU it competed with the network and did not gain (throwaway runs)
            prefetch_cpus=sorted(self.cpu_plan.others) if self.cpu_plan else None)

    def _tracker_spec(self) -> TrackerStageSpec:
        return TrackerStageSpec(
            detections_endpoint=self.endpoints.detections, tracker=self.config.tracker, events=self.config.events,
            open_outputs=self._sink_settings(), expected_streams=[s.id for s in self.config.sources],
            security=self.security)

    def _sink_settings(self) -> SinkSettings | None:
        o = self.config.output
        if not o.dir:
            return None
        return SinkSettings(
            o.dir, mot=o.mot, jsonl=o.jsonl, video=o.video,
            sources={s.id: s.url for s in self.config.sources},
            # decoding, drawing and encoding the annotated video cost ~10x the tracking: its
            # threads may use every CPU, the detector's included (vidtrack track on the
            # towncentre clip, interleaved runs: steady state 72 frames/s, 50 with the video
            # written on the tracker's thread and CPU)
            video_cpus=sorted(self.cpu_plan.detector | self.cpu_plan.others) if self.cpu_plan else None)

    def _start(self, name: str, target, spec, stop, *extra):
        """Start one child process running ``target(spec, stop, reports, *extra)``."""
        cpus = None
        if self.cpu_plan is not None:
            cpus = self.cpu_plan.detector if target is detector_main else self.cpu_plan.others
        reports, writer = self.reports.new_pipe()
        proc = self.ctx.Process(target=_child, args=(target, (spec, stop, *extra), reports, self.verbose, cpus),
                                name=name, daemon=False)
        if name in self._children:
            self.metrics.restarted(name)
        self._ready.discard(name)
        try:
            proc.start()
        finally:
            writer.close()  # the child has its own copy: when it dies, its pipe reads as ended
        self._children[name] = proc
        return proc

    # ---- run
    def run(self) -> RunSummary:
        """Start every stage, supervise them until the file sources end or a stop (Ctrl-C,
        SIGTERM, :meth:`stop`), then stop them cleanly: children joined, rings and sockets'
        folders removed."""
        with self._sigterm_stops_the_run():
            return self._run()

    @contextmanager
    def _sigterm_stops_the_run(self):
        """SIGTERM (systemd, Kubernetes, kill) takes the Ctrl-C path: a clean stop, not a kill
        that leaves the children, the shared-memory rings and the temp folder behind."""
        self._stop_signal = ""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigterm(signum, frame):
            if not self._stop_signal:  # a second SIGTERM must not cut the clean stop short
                self._stop_signal = "SIGTERM"
                raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _run(self) -> RunSummary:
        start = time.monotonic()
        for s in self.config.sources:
            self.summary.streams[s.id] = StreamSummary(s.id, s.url)
        self._checkpoints = tempfile.mkdtemp(prefix="vt-ckpt-")  # 0700: pickles only this run reads
        try:  # an error while the stages start still removes what was made (temp folder, rings)
            self._start_metrics_server()
            self._start_stages()
            self._supervise()
        except KeyboardInterrupt:
            self.summary.stopped_by = self._stop_signal or "SIGINT"
            log.warning("%s: stopping the grabbers and draining the pipeline", self.summary.stopped_by)
        except StageFailed as exc:
            self._failed = True
            self.summary.errors.append(str(exc))
            log.error("%s", exc)
        finally:
            self._shutdown()
            self._drain_reports()
            self.reports.close()
            for bar in self._bars.values():
                bar.close()
            self.endpoints.cleanup()
            shutil.rmtree(self._checkpoints, ignore_errors=True)
            frame_ring.cleanup(self.ring_prefix)  # rings of grabbers that were killed
            if self.metrics_server is not None:
                self.metrics_server.close()
        self.summary.detector = self._merged_detector_stats()
        self.summary.stages = self.metrics.stage_counts()
        self.summary.restarts = self.metrics.restarts()
        self.summary.elapsed_s = time.monotonic() - start
        return self.summary

    @property
    def tracker(self):
        child = self.children.get("tracker")
        return child.proc if child is not None else None

    @property
    def detectors(self) -> dict:
        return {c.name: c.proc for c in self.children.values() if c.kind == "detector" and c.proc}

    @property
    def grabbers(self) -> dict:
        return {c.stream: c.proc for c in self.children.values() if c.kind == "grabber" and c.proc}

    def _start_stages(self) -> None:
        budget = lambda: RestartBudget(self.config.supervision)  # noqa: E731
        tracker_spec = replace(self._tracker_spec(), checkpoint_dir=self._checkpoints,
                               checkpoint_frames=self.config.supervision.checkpoint_frames)
        children = [Child("tracker", "tracker", tracker_spec, budget())]
        detector_spec = self._detector_spec()
        children += [Child(f"detector-{i}", "detector", detector_spec, budget())
                     for i in range(self.config.detector.workers)]
        for spec in self._grabber_specs():
            live = spec.source.is_live
            children.append(Child(f"grabber-{spec.stream_id}", "grabber", spec, budget(), stream=spec.stream_id,
                                  live=live, rewind=None if live else RewindRequest(self.ctx)))
        for child in children:
            self.children[child.name] = child
            self._launch(child)

    def _launch(self, child: Child) -> None:
        if child.kind == "tracker":
            child.proc = self._start(child.name, tracker_main, child.spec, self.stop_tracker)
        elif child.kind == "detector":
            child.proc = self._start(child.name, detector_main, child.spec, self.stop_detectors)
        else:
            child.proc = self._start(child.name, grabber_main, child.spec, self.stop_grabbers,
                                     self.release_grabbers, child.rewind)
        child.started_at = time.monotonic()

    def _supervise(self) -> None:
        """Until the tracker has ended every stream: wake on a report or a child's death,
        restart the dead (after their backoff)."""
        while True:
            self._wait_for_news(0.2)
            self._drain_reports()
            for child in list(self.children.values()):
                if child.proc is not None and child.proc.exitcode is not None and not child.finished:
                    self._on_exit(child)
                elif child.proc is None and time.monotonic() >= child.restart_at:
                    self._restart(child)
            if self.children["tracker"].finished:
                break
        self._drain_reports()

    def _wait_for_news(self, timeout: float) -> None:
        """Block until a child exits, a report arrives, or ``timeout`` s pass."""
        handles = [c.proc.sentinel for c in self.children.values() if c.proc is not None and not c.finished]
        multiprocessing.connection.wait(handles + self.reports.handles(), timeout)

    def _on_exit(self, child: Child) -> None:
        """A child exited: done (a grabber or the tracker, cleanly), or dead: restart it later."""
        code = child.proc.exitcode
        if code == 0 and child.kind in ("grabber", "tracker"):
            child.finished = True
            return
        how = describe_exit(code)
        delay = child.budget.next_delay(time.monotonic() - child.started_at)
        child.proc = None
        if child.kind == "detector":
            self._rewind_files(fresh_ring=True)  # the frames it held are lost: send them again
        if delay is None:
            self._out_of_budget(child, how)
            return
        child.restart_at = time.monotonic() + delay
        log.warning("%s died (%s); restarting it in %.1f s (%d restarts left)", child.name, how, delay,
                    child.budget.left)

    def _out_of_budget(self, child: Child, how: str) -> None:
        message = f"{child.name} died ({how}) more often than supervision.restart_budget allows"
        if child.kind != "grabber":
            raise StageFailed(f"{message}; the run stops")
        stream = self.summary.streams[child.stream]
        stream.error = f"{message}; the stream is given up"
        self._stream_error(stream, stream.error)
        child.spec = replace(child.spec, resume_seq=self.acked[child.stream], end_with_error=stream.error)
        child.restart_at, child.rewind = time.monotonic(), None  # a grabber that only ends the stream

    def _restart(self, child: Child) -> None:
        if child.kind == "tracker":
            child.spec = replace(child.spec, restore=True)
        elif child.kind == "grabber" and not child.spec.end_with_error:
            acked = self.acked[child.stream]
            child.spec = replace(child.spec, resume_seq=acked + LIVE_RESUME_GAP if child.live else acked)
        log.warning("restarting %s", child.name)
        self._launch(child)

    def _rewind_files(self, streams=None, fresh_ring: bool = False) -> None:
        """Have the file grabbers of ``streams`` (default: all) send again from the tracker's
        acknowledged frame (a running grabber is asked; a restarting one resumes there)."""
        for child in self.children.values():
            if child.rewind is not None and (streams is None or child.stream in streams) \
                    and not self.summary.streams[child.stream].reason:
                child.rewind.request(self.acked[child.stream], fresh_ring)

    def stop(self) -> None:
        self.stop_grabbers.set()

    def _shutdown(self) -> None:
        self.stop_grabbers.set()
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        # the tracker leaves by itself once every stream's end marker went through (not after a
        # stage failed: the end markers may never come)
        while not self._failed and self.tracker is not None and self.tracker.is_alive() \
                and time.monotonic() < deadline:
            self._drain_reports(timeout=0.2)
        self.stop_tracker.set()
        if self.tracker is not None:
            self._join(self.tracker, deadline)
        self.release_grabbers.set()
        self.stop_detectors.set()
        for proc in [c.proc for c in self.children.values() if c.proc is not None]:
            self._join(proc, deadline)
            if proc.is_alive():
                log.warning("%s did not stop in time; terminating it", proc.name)
                proc.terminate()
                proc.join(2)

    def _join(self, proc, deadline: float) -> None:
        """Wait for ``proc`` to exit (until ``deadline``), reading reports meanwhile: a child
        blocked on a full report pipe would never get to exit."""
        while proc.is_alive() and time.monotonic() < deadline:
            self._drain_reports(timeout=min(0.2, max(0.01, deadline - time.monotonic())))
            proc.join(0.01)
        proc.join(0.1)

    # ---- reports from the children
    def _drain_reports(self, timeout: float = 0.0) -> None:
        """Handle every report that arrived, waiting up to ``timeout`` s for the first."""
        if timeout and self.reports.handles():
            multiprocessing.connection.wait(self.reports.handles(), timeout)
        for report in self.reports.drain():
            self._on_report(report)

    def _on_report(self, r: dict) -> None:
        event, stage = r.get("event"), r.get("stage")
        stream = self.summary.streams.get(r.get("stream", ""))
        if event != "cpus":
            self._note_ready(r)
        if event == "metrics":
            self.metrics.add(str(stage), r, source=str(r.get("pid", r.get("stream", ""))))
        elif event == "cpus":
            self.summary.cpus[str(stage)] = list(r.get("cpus", []))
        elif event == "crashed":  # the supervisor restarts it; the run fails if it keeps crashing
            log.error("%s crashed: %s\n%s", stage, r.get("error"), r.get("traceback", ""))
        elif stage == "grabber" and stream is not None:
            self._on_grabber_report(stream, event, r)
        elif stage == "tracker" and stream is not None:
            self._on_tracker_report(stream, event, r)
        elif stage == "detector" and event == "stats":
            self._detector_stats[r.get("pid", "0")] = {k: v for k, v in r.items() if k not in ("stage", "event")}

    def _note_ready(self, r: dict) -> None:
        """A report from a stage's body: its process is up (a detector once its models loaded)."""
        stage = r.get("stage")
        if stage == "detector":
            pid = r.get("pid")
            name = next((n for n, p in list(self._children.items()) if p.pid == pid and n.startswith("detector")), None)
        else:
            name = f"grabber-{r.get('stream')}" if stage == "grabber" else stage
        if name in self._children:
            self._ready.add(name)

    # ---- metrics and health
    def _start_metrics_server(self) -> None:
        address = parse_endpoint(self.config.metrics.endpoint)
        if address is not None:
            self.metrics_server = MetricsServer(address, self.metrics.registry, self.health).start()

    def health(self) -> dict:
        """{"status": "ok" | "unavailable", "stages": {process name: state}}: ok while every
        child is up (alive and reporting from its stage) or finished well. Called from the HTTP
        server's threads: it looks at the children's sentinels and reads the exit code only of
        one that exited (multiprocessing keeps that code for the supervisor's own look)."""
        children = list(self._children.items())
        exited = set(multiprocessing.connection.wait([p.sentinel for _, p in children], timeout=0)) if children else set()
        stages = {}
        for name, proc in children:
            if proc.sentinel in exited:
                stages[name] = "done" if proc.exitcode == 0 else f"exited ({proc.exitcode})"
            else:
                stages[name] = "running" if name in self._ready else "starting"
        ok = bool(stages) and all(state in ("running", "done") for state in stages.values())
        return {"status": "ok" if ok else "unavailable", "stages": stages}

    def _processes_up(self) -> dict[str, bool]:
        return {name: state == "running" for name, state in self.health()["stages"].items()}

    def _on_grabber_report(self, stream: StreamSummary, event, r: dict) -> None:
        """A grabber started (progress bar for a file), failed or ended."""
        if event == "started":
            stream.frames_total = int(r.get("frames") or 0) if not r.get("live") else 0
            if self.progress and stream.frames_total:
                from tqdm import tqdm

                self._bars[stream.stream_id] = tqdm(total=stream.frames_total, desc=stream.stream_id,
                                                    unit="frame", position=len(self._bars), leave=True)
        elif event == "error":
            stream.error = r.get("message", "")
            self._stream_error(stream, stream.error)
        elif event == "ended":
            stream.dropped = int(r.get("dropped", 0))

    def _on_tracker_report(self, stream: StreamSummary, event, r: dict) -> None:
        """The tracker tracked frames, saw a stream end or lost a sink."""
        if event == "frames":
            self.acked[stream.stream_id] = max(self.acked[stream.stream_id], int(r.get("next_seq", 0)))
            self._on_frames_tracked(stream, int(r.get("count", 0)), float(r["first_at"]), float(r["last_at"]))
        elif event == "restored":  # a restarted tracker goes on from its checkpoint: send from there
            self.acked[stream.stream_id] = int(r.get("next_seq", 0))
            stream.frames_tracked = int(r.get("frames", 0))  # what it tracks again is counted again
            self._rewind_files([stream.stream_id])
        elif event == "gap":  # a frame lost without a stage dying: send again from the acknowledged one
            self.acked[stream.stream_id] = max(self.acked[stream.stream_id], int(r.get("next_seq", 0)))
            stream.resends += 1
            self._rewind_files([stream.stream_id])
        elif event == "stream.ended":
            stream.reason = r.get("reason", "")
        elif event == "error":  # a sink of this stream failed; tracking goes on
            self._stream_error(stream, r.get("message", ""))

    def _on_frames_tracked(self, stream: StreamSummary, count: int, first_at: float, last_at: float) -> None:
        """``count`` frames tracked since the tracker's last report, the first and last at these times."""
        stream.frames_tracked += count
        if self.summary.first_frame_at is None or first_at < self.summary.first_frame_at:
            self.summary.first_frame_at = first_at
        if self.summary.last_frame_at is None or last_at > self.summary.last_frame_at:
            self.summary.last_frame_at = last_at
        bar = self._bars.get(stream.stream_id)
        if bar is not None:
            bar.update(count)

    def _stream_error(self, stream: StreamSummary, message: str) -> None:
        self.summary.errors.append(f"{stream.stream_id}: {message}")
        log.error("%s: %s", stream.stream_id, message)

    def _merged_detector_stats(self) -> dict:
        merged: dict = {}
        for stats in self._detector_stats.values():
            for key, value in stats.items():
                if isinstance(value, (int, float)):
                    merged[key] = merged.get(key, 0) + value
        return merged
