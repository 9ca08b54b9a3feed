"""How the supervisor and its stage processes talk, made to survive ``kill -9`` of a child.

multiprocessing's shared ``Queue`` and ``Event`` hold locks (and, for ``Event.set``, count
the sleepers it must wake) in memory shared by every process: a child killed while it holds
the queue's write lock or sleeps in ``Event.wait`` leaves the others' reports stuck and
``set`` waiting for ever (tried: a child killed while writing to a shared queue stopped
another child's reports in 6 of 20 tries, and a supervisor so deaf never ends). So nothing here is shared between
children or locked across processes:

- :class:`ReportPipe`: one pipe per child process, written only by that child (by a
  thread of its own, so that a report never blocks the stage), read only by the supervisor;
  a dead child's pipe is read to its end and closed, a new process gets a new pipe.
- :class:`SharedFlag`: a byte in shared memory, written by the supervisor, polled by the
  children (``is_set``/``wait`` like ``threading.Event``).
"""
from __future__ import annotations

import collections
import logging
import threading
import time

log = logging.getLogger(__name__)

FLAG_POLL_S = 0.01  # how often SharedFlag.wait looks at the flag
DRAIN_PER_PIPE = 256  # reports read from one child's pipe per drain, before the next pipe's


class SharedFlag:
    """A flag the supervisor sets and clears and its children read: ``threading.Event``'s
    ``set``/``clear``/``is_set``/``wait``, without a lock a killed process could hold."""

    def __init__(self, ctx):
        self._value = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def clear(self) -> None:
        self._value.value = 0

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the flag is set, after waiting up to ``timeout`` s (None: for ever) for it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._value.value:
            left = FLAG_POLL_S if deadline is None else min(FLAG_POLL_S, deadline - time.monotonic())
            if left <= 0:
                return False
            time.sleep(left)
        return True


class ReportPipe:
    """The child's end of its report pipe: ``put(report)`` from any of its threads, never
    blocking (a writer thread sends; a supervisor that stopped reading, e.g. while it
    shuts down, must not stop the child), :meth:`flush` before the child exits."""

    def __init__(self, connection):
        self._connection = connection
        self._pending: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._start = threading.Lock()
        self._writer: threading.Thread | None = None

    def put(self, report: dict) -> None:
        self._idle.clear()
        self._pending.append(report)
        if self._writer is None:
            with self._start:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write, name="reports", daemon=True)
                    self._writer.start()
        self._wake.set()

    def _write(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._pending:
                try:
                    self._connection.send(self._pending.popleft())
                except (OSError, ValueError):  # the supervisor is gone: nobody to tell
                    self._pending.clear()
                    self._idle.set()
                    return
            self._idle.set()
            if self._pending:  # put() between the loop's end and set(): go round again
                self._idle.clear()
                self._wake.set()

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait up to ``timeout`` s until every report was written; whether they were."""
        return self._idle.wait(timeout)

    def __getstate__(self):
        return {"connection": self._connection}

    def __setstate__(self, state):
        self.__init__(state["connection"])


class Reports:
    """The supervisor's ends of every child's report pipe."""

    def __init__(self, ctx):
        self._ctx = ctx
        self._readers: list = []

    def new_pipe(self) -> tuple[ReportPipe, object]:
        """(what a new child writes to, the supervisor's copy of that end to close once the
        child started: with it closed, a dead child's pipe reads as ended)."""
        reader, writer = self._ctx.Pipe(duplex=False)
        self._readers.append(reader)
        return ReportPipe(writer), writer

    def handles(self) -> list:
        """What :func:`multiprocessing.connection.wait` waits on for news."""
        return list(self._readers)

    def drain(self) -> list[dict]:
        """Every report that arrived; pipes of children that are gone are closed."""
        reports = []
        for reader in list(self._readers):
            try:
                for _ in range(DRAIN_PER_PIPE):  # a chatty child does not starve the others
                    if not reader.poll():
                        break
                    reports.append(reader.recv())
            except (EOFError, OSError):  # the child is gone (killed mid-report: the rest is lost with it)
                self._close(reader)
            except Exception as exc:  # noqa: BLE001 - a report that does not unpickle: the child is broken
                log.warning("an unreadable report from a stage: %s", exc)
                self._close(reader)
        return reports

    def _close(self, reader) -> None:
        self._readers.remove(reader)
        reader.close()

    def close(self) -> None:
        for reader in list(self._readers):
            self._close(reader)
