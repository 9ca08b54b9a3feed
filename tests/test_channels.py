"""The supervisor's channels to its children survive ``kill -9`` of a child at any moment:
the other children's reports keep coming, and setting a flag a killed child was waiting
on returns (multiprocessing's shared Queue and Event fail both, now and then)."""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import time

import pytest

from pipeline.channels import Reports, SharedFlag

CTX = mp.get_context("spawn")


def _report_for_ever(reports, name: str) -> None:
    while True:
        reports.put({"stage": name, "padding": "x" * 300})


def _wait_on(flag, ready) -> None:
    ready.set()
    while True:
        flag.wait(0.05)


def _collect(reports: Reports, seconds: float) -> list[dict]:
    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        multiprocessing.connection.wait(reports.handles(), 0.05)
        got += reports.drain()
    return got


@pytest.mark.faults
def test_a_child_killed_while_reporting_leaves_the_others_reports_flowing():
    for trial in range(5):
        reports = Reports(CTX)
        children = {}
        for name in ("killed", "other"):
            pipe, writer = reports.new_pipe()
            children[name] = CTX.Process(target=_report_for_ever, args=(pipe, name), daemon=True)
            children[name].start()
            writer.close()
        try:
            seen, deadline = set(), time.monotonic() + 60
            while seen != {"killed", "other"} and time.monotonic() < deadline:  # both started
                seen |= {r["stage"] for r in _collect(reports, 0.1)}
            assert seen == {"killed", "other"}
            _collect(reports, 0.2)
            os.kill(children["killed"].pid, signal.SIGKILL)  # most likely in the middle of a send
            children["killed"].join(5)
            _collect(reports, 0.1)  # whatever the dead one had written
            after = _collect(reports, 0.5)
            assert {r["stage"] for r in after} == {"other"} and len(after) > 100, f"trial {trial}: {len(after)}"
        finally:
            for child in children.values():
                child.kill()
                child.join(5)
            reports.close()


@pytest.mark.faults
def test_setting_a_flag_a_killed_child_waited_on_returns_and_reaches_the_living():
    flag, ready = SharedFlag(CTX), CTX.Event()
    killed = CTX.Process(target=_wait_on, args=(flag, ready), daemon=True)
    killed.start()
    assert ready.wait(60)
    time.sleep(0.2)
    os.kill(killed.pid, signal.SIGKILL)
    killed.join(5)
    started = time.monotonic()
    flag.set()
    assert time.monotonic() - started < 0.1
    assert flag.is_set() and flag.wait(0)
    flag.clear()
    assert not flag.wait(0.05)
