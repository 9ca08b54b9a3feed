"""Which CPUs each process of the service may run on.

On a CPU-only machine the detector is the slowest stage and shares the cores with the
decoders and the tracker. Left to the scheduler, their bursts (a grabber refilling its ring,
the tracker catching up on a batch) preempt the detector's threads; bench/pipeline.py's
per-process table shows the detector runnable but waiting for a core for 2-3 ms of every
frame on 2 cores unpinned, 1.1-1.4 ms pinned. Giving the detector processes cores of their
own and the grabbers and the tracker the rest removes most of that wait.

Limits: measured on 2 cores with one source only. CPUs are taken in id order, so on a machine
with hyperthreads the two sets may share physical cores; with the detector on a GPU its cores
are mostly idle while the decoders keep to theirs (set ``detector.pin_cpus = false`` there).
The supervisor process itself is not pinned, and the tracker's annotated-video threads
(``output.video``) may use every CPU: decoding and encoding a 1080p frame again costs ~10 ms,
more than the grabbers' cores have to spare.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CpuPlan:
    """CPU ids for the detector processes and for everything else the service starts."""

    detector: frozenset[int]
    others: frozenset[int]


def allowed_cpus() -> list[int]:
    """CPUs this process may use (its affinity mask: a container's cpuset counts), sorted;
    empty where the OS has no affinity call."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def plan_cpus(allowed: list[int], sources: int) -> CpuPlan | None:
    """Split ``allowed`` CPUs (n of them): the first ``max(1, min(sources + 1, n // 2))`` go
    to the grabbers (one decoding thread per source) and the tracker, the others to the
    detector processes. None with fewer than 2 CPUs, where there is nothing to split."""
    cpus = sorted(set(allowed))
    if len(cpus) < 2:
        return None
    reserved = max(1, min(sources + 1, len(cpus) // 2))
    return CpuPlan(detector=frozenset(cpus[reserved:]), others=frozenset(cpus[:reserved]))


def pin_this_process(cpus) -> list[int]:
    """Restrict every thread of the calling process, and the threads it starts later, to
    ``cpus``; returns the CPUs its main thread may use afterwards. The interpreter's start-up
    (numpy's BLAS pool, OpenCV) already started threads before a spawned child gets here, and
    ``sched_setaffinity(0)`` alone would move only the calling thread. Where pinning is not
    possible (no affinity call, a CPU gone from the cpuset, no permission) the process runs
    unpinned and says so in the log."""
    if cpus and hasattr(os, "sched_setaffinity"):
        try:
            tids = [int(t) for t in os.listdir("/proc/self/task")]
        except OSError:
            tids = [0]
        try:
            os.sched_setaffinity(0, set(cpus))  # first the caller: new threads inherit its mask
            for tid in tids:
                try:
                    os.sched_setaffinity(tid, set(cpus))
                except ProcessLookupError:
                    pass  # the thread ended meanwhile
        except OSError as exc:
            log.warning("cannot keep this process to CPUs %s (%s); it runs unpinned", sorted(cpus), exc)
    return allowed_cpus()


def pin_this_thread(cpus, what: str) -> None:
    """Restrict the calling thread only (Linux affinity is per thread) and the threads it
    starts later to ``cpus``; where that fails, ``what`` is named in a warning and the thread
    keeps its process's CPUs."""
    if cpus and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, set(cpus))
        except OSError as exc:
            log.warning("%s stays on its process's CPUs, not %s (%s)", what, sorted(cpus), exc)
