"""CPU split between the detector processes and the rest (pipeline.affinity)."""

import pytest

from pipeline.affinity import CpuPlan, plan_cpus


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
