"""CPU split between the detector processes and the rest (workers.affinity)."""

import os
import subprocess
import sys
import textwrap

import pytest

from workers.affinity import CpuPlan, allowed_cpus, pin_this_process, plan_cpus


@pytest.mark.parametrize("allowed, sources, detector, others", [
    ([0, 1], 1, {1}, {0}),  # the 2-core box: detector on one core, grabber + tracker on the other
    ([0, 1], 4, {1}, {0}),  # never fewer than one core for the detector
    (list(range(16)), 1, set(range(2, 16)), {0, 1}),  # a grabber and the tracker, a core each
    (list(range(16)), 7, set(range(8, 16)), set(range(8))),
    (list(range(16)), 30, set(range(8, 16)), set(range(8))),  # at most half for the grabbers
    ([3, 5, 9, 12], 1, {9, 12}, {3, 5}),  # a cpuset that is not 0..n-1
])
def test_plan_splits_the_allowed_cpus(allowed, sources, detector, others):
    plan = plan_cpus(allowed, sources)
    assert plan == CpuPlan(frozenset(detector), frozenset(others))
    assert not plan.detector & plan.others and plan.detector | plan.others == set(allowed)


def test_no_plan_with_one_cpu():
    assert plan_cpus([0], 1) is None and plan_cpus([], 1) is None


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(allowed_cpus()) < 2,
                    reason="needs the Linux affinity call and two CPUs")
def test_pinning_covers_threads_started_before_and_after():
    """In a child process (pytest itself stays unpinned): a thread that already runs, the
    main thread and a thread started afterwards all end up on the chosen CPU."""
    code = textwrap.dedent(f"""
        import os, threading
        from workers.affinity import pin_this_process
        cpu = {allowed_cpus()[0]}
        started, done = threading.Event(), threading.Event()
        def wait():
            started.set()
            done.wait()
        before = threading.Thread(target=wait)
        before.start()
        started.wait()
        assert pin_this_process({{cpu}}) == [cpu]
        after = threading.Thread(target=done.wait)
        after.start()
        masks = [os.sched_getaffinity(t.native_id) for t in (before, after)]
        done.set()
        print(masks == [{{cpu}}, {{cpu}}], os.sched_getaffinity(0) == {{cpu}})
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


def test_a_cpu_that_cannot_be_used_leaves_the_process_unpinned(caplog):
    before = allowed_cpus()
    assert pin_this_process({4_000_000}) == before  # no such CPU: a warning, not a crash
    if hasattr(os, "sched_setaffinity"):
        assert "runs unpinned" in caplog.text
