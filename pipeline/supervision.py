"""Restarts of dead stage processes: capped exponential backoff and a restart budget that
recovers over time (a token bucket), one per child; the ``[supervision]`` settings."""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Callable

from base.settings import setting


@dataclass
class SupervisionConfig:
    """The ``[supervision]`` table: how dead stages are restarted, how often the tracker
    checkpoints its state."""

    restart_budget: int = setting(5, minimum=0)  # restarts a stage may use in a burst; 0 = none
    budget_recovery_s: float = setting(60.0, above=0.0)  # one spent restart comes back per this many s
    backoff_s: float = setting(0.5, minimum=0.0)  # wait before a restart; doubles per death in a row
    backoff_max_s: float = setting(10.0, minimum=0.0)  # cap of the wait; a child up this long starts over
    checkpoint_frames: int = setting(100, minimum=1)  # the tracker saves each stream's state this often


class RestartBudget:
    """Restarts left to one child: a bucket of ``restart_budget`` tokens, one back per
    ``budget_recovery_s``; each death takes one and waits ``backoff_s * 2**n`` (at most
    ``backoff_max_s``), n = deaths in a row of a child that never stayed up ``backoff_max_s``."""

    def __init__(self, config: SupervisionConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self._clock = clock
        self.tokens = float(config.restart_budget)
        self._refilled_at = clock()
        self.in_a_row = 0

    def next_delay(self, uptime_s: float) -> float | None:
        """Seconds to wait before restarting a child that died after ``uptime_s``; None when
        the budget is spent."""
        self._refill()
        if uptime_s >= self.config.backoff_max_s:
            self.in_a_row = 0
        if self.tokens < 1.0:
            return None
        self.tokens -= 1.0
        delay = min(self.config.backoff_s * 2.0 ** self.in_a_row, self.config.backoff_max_s)
        self.in_a_row += 1
        return delay

    @property
    def left(self) -> int:
        """Whole restarts left now."""
        self._refill()
        return int(self.tokens)

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(float(self.config.restart_budget),
                          self.tokens + (now - self._refilled_at) / self.config.budget_recovery_s)
        self._refilled_at = now


def describe_exit(exitcode: int | None) -> str:
    """``killed by SIGKILL`` for a negative exit code, ``exit code 1`` otherwise."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
