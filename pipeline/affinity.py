"""Which CPUs each process of the service may run on.

On a CPU-only machine the detector is the slowest stage and shares the cores with the
decoders and the tracker. Left to the scheduler, their bursts (a grabber refilling its ring,
the tracker catching up on a batch) preempt the detector's threads; bench/pipeline.py's
per-process table shows the detector runnable but waiting for a core for ~2 ms of every
frame on 2 cores. Giving the detector processes cores of their own and the grabbers and the
tracker the rest removes most of that wait.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


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
    """Restrict the calling process (its threads started from now on) to ``cpus``; returns the
    CPUs it may use afterwards (unchanged where the OS has no affinity call)."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))
    return allowed_cpus()
