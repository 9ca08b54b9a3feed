"""Frames in shared memory: a grabber writes each raw frame once into a slot of a ring that
the detector maps, and the ZeroMQ message carries only the slot number.

Why: over ipc a 1080p frame (6.2 MB) crosses the kernel twice (socket write, socket read);
on the 2-core dev box that costs ~2 CPU ms per frame against ~0.25 ms for one memcpy
(an ad-hoc timing loop), CPU that decode and inference need; bench/pipeline.py prints both
transports' throughput and the end-to-end rate with each.

Segment layout (a file in /dev/shm, mode 0600, space reserved up front with
posix_fallocate so a full tmpfs is an error here and never a SIGBUS later)::

    [0:8)    magic b"VTRING1\\0"
    [8:12)   slots, uint32 little-endian
    [12:16)  reserved
    [16:24)  slot_bytes, uint64 little-endian
    [64:64+slots)  slot states, uint8: 0 free, 1 in use (set by the grabber, cleared by the detector)
    [DATA + i * slot_bytes ...)  slot i, DATA = 64 + slots rounded up to 4096

One writer per transition: the grabber turns a free slot busy before writing it (it may
decode straight into the slot); the detector frees it once the batch holding it is processed.
The grabber frees a busy slot itself only when no message will ever name it (``cancel``: end
of file, a frame of another size, a send that did not happen). A detector that dies holding
slots never frees them: the grabber notices that nothing was freed for ``stall_s`` while
every slot was busy, leaves that ring mapped (messages still queued may point into it) and
starts a fresh one, up to ``max_rings``; after that it sends frames inline.
"""
from __future__ import annotations

import logging
import mmap
import os
import re
import secrets
import struct
import threading
import time

import numpy as np

log = logging.getLogger(__name__)

SHM_DIR = "/dev/shm"
MAGIC = b"VTRING1\0"
HEADER = 64
NAME_RE = re.compile(r"^vidtrack-[A-Za-z0-9_.-]{1,200}$")  # no "/": a file directly in SHM_DIR
MAX_SLOTS = 1024
MAX_SLOT_BYTES = 8192 * 8192 * 3
# A grabber waiting for a free slot checks again after 0.5 ms, then after pauses doubling up
# to 8 ms. Slots come back a batch at a time, while the detector still holds a queued batch,
# so a few ms of lateness costs no throughput. Polling every 0.5 ms woke the blocked grabber
# ~2,000 times a second on cores the detector needs (a throwaway /proc schedstat count showed
# about a third as many grabber time slices per frame with the back-off; bench/pipeline.py's
# per-process table shows the count now).
MIN_PAUSE_S = 0.0005
MAX_PAUSE_S = 0.008


def available() -> bool:
    """Shared-memory frames work on this machine (Linux tmpfs at /dev/shm)."""
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)


def _data_offset(slots: int) -> int:
    return (HEADER + slots + 4095) // 4096 * 4096


class RingError(Exception):
    """A ring segment cannot be made, or a frame message names one that is not valid."""


class _Segment:
    """One mapped ring file."""

    def __init__(self, name: str, create_slots: int = 0, slot_bytes: int = 0):
        if not NAME_RE.match(name):
            raise RingError(f"bad ring name {name!r}")
        self.name = name
        self.path = os.path.join(SHM_DIR, name)
        if create_slots:
            size = _data_offset(create_slots) + create_slots * slot_bytes
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
                self.map = mmap.mmap(fd, size)
            except OSError as exc:
                os.close(fd)
                os.unlink(self.path)
                raise RingError(f"cannot reserve {size / 1e6:.0f} MB in {SHM_DIR}: {exc}") from None
            os.close(fd)
            self.map[:24] = MAGIC + struct.pack("<II", create_slots, 0) + struct.pack("<Q", slot_bytes)
            self.slots, self.slot_bytes = create_slots, slot_bytes
        else:
            try:
                fd = os.open(self.path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
            except OSError as exc:
                raise RingError(f"cannot open ring {name!r}: {exc.strerror}") from None
            try:
                size = os.fstat(fd).st_size
                if size < HEADER:
                    raise RingError(f"ring {name!r} is too small")
                self.map = mmap.mmap(fd, size)
            finally:
                os.close(fd)
            magic = bytes(self.map[:8])
            slots, _ = struct.unpack("<II", self.map[8:16])
            (slot_bytes,) = struct.unpack("<Q", self.map[16:24])
            if (magic != MAGIC or not 0 < slots <= MAX_SLOTS or not 0 < slot_bytes <= MAX_SLOT_BYTES
                    or size < _data_offset(slots) + slots * slot_bytes):
                self.map.close()
                raise RingError(f"ring {name!r} has a bad header")
            self.slots, self.slot_bytes = slots, slot_bytes
        self.states = np.frombuffer(self.map, np.uint8, self.slots, HEADER)
        self.data = _data_offset(self.slots)

    def view(self, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        return np.frombuffer(self.map, np.uint8, int(np.prod(shape)), self.data + slot * self.slot_bytes).reshape(shape)

    def close(self) -> None:
        self.states = None
        try:
            self.map.close()
        except BufferError:  # a view is still alive somewhere; the mapping goes with the process
            pass


class RingWriter:
    """Grabber side: hands out free slots of a ring sized for the first frame it sees."""

    def __init__(self, prefix: str, slots: int, stall_s: float = 5.0, max_rings: int = 3,
                 max_pause_s: float = MAX_PAUSE_S):
        self.prefix = prefix
        self.slots = slots
        self.stall_s = stall_s
        self.max_rings = max_rings
        self.max_pause_s = max_pause_s
        self.rings: list[_Segment] = []  # the last one is current
        self.disabled = slots <= 0 or not available()

    def put(self, image: np.ndarray, stop=None) -> tuple[str, int] | None:
        """Copy ``image`` (uint8[H, W, 3]) into a free slot; returns (ring name, slot), or None
        when the frame must go inline (ring unavailable, frame larger than a slot, stalled)."""
        reserved = self.reserve(image.shape, stop)
        if reserved is None:
            return None
        name, slot, view = reserved
        np.copyto(view, image)
        return name, slot

    def reserve(self, shape: tuple[int, int, int], stop=None) -> tuple[str, int, np.ndarray] | None:
        """Claim a free slot for a uint8 frame of ``shape`` and return (ring name, slot, the
        slot as a writable uint8 array of that shape), so a decoder can write the frame in
        place; :meth:`cancel` gives the slot back if no frame is written. Waits for a slot like
        :meth:`put`; None when the frame must go inline."""
        if self.disabled:
            return None
        nbytes = int(np.prod(shape))
        if not self.rings and not self._new_ring(nbytes):
            return None
        ring = self.rings[-1]
        if nbytes > ring.slot_bytes:
            return None
        waited_since = time.monotonic()
        pause = MIN_PAUSE_S
        while True:
            free = np.flatnonzero(ring.states == 0)
            if len(free):
                slot = int(free[0])
                ring.states[slot] = 1
                return ring.name, slot, ring.view(slot, tuple(shape))
            if stop is not None and stop.is_set():
                return None
            if time.monotonic() - waited_since > self.stall_s:
                log.warning("frame ring %s: no slot freed for %.0f s", ring.name, self.stall_s)
                if len(self.rings) >= self.max_rings or not self._new_ring(ring.slot_bytes):
                    log.warning("sending frames inline from now on")
                    self.disabled = True
                    return None
                ring = self.rings[-1]
                waited_since = time.monotonic()
            time.sleep(pause)
            pause = min(2 * pause, self.max_pause_s)

    def start_fresh(self) -> None:
        """Leave the current ring (a dead detector may hold its slots for ever; messages still
        queued may point into it) for a new one, up to ``max_rings``; then frames go inline."""
        if self.disabled or not self.rings:
            return
        if len(self.rings) >= self.max_rings or not self._new_ring(self.rings[-1].slot_bytes):
            log.warning("sending frames inline from now on")
            self.disabled = True

    def busy(self) -> int:
        """Slots of the current ring in use: frames written and not yet freed by a detector."""
        return int(np.count_nonzero(self.rings[-1].states)) if self.rings else 0

    def cancel(self, name: str, slot: int) -> None:
        """Give back a slot claimed by :meth:`reserve` that no message will name."""
        for ring in self.rings:
            if ring.name == name:
                ring.states[slot] = 0

    def _new_ring(self, slot_bytes: int) -> bool:
        name = f"{self.prefix}-{secrets.token_hex(4)}"
        try:
            self.rings.append(_Segment(name, self.slots, slot_bytes))
            return True
        except (RingError, OSError) as exc:
            log.warning("frames go inline: %s", exc)
            self.disabled = True
            return False

    def close(self) -> None:
        for ring in self.rings:
            ring.close()
            try:
                os.unlink(ring.path)
            except FileNotFoundError:
                pass
        self.rings = []


class RingReader:
    """Detector side: maps the rings that frame messages name and frees their slots once
    the frames are done with: :meth:`release_all` after each batch, or, where one thread
    gathers the next batch while another still reads the last one, :meth:`take_held` on
    the gathering thread and :meth:`release` of what it returned on the other."""

    MAX_OPEN = 64

    def __init__(self):
        self.open: dict[str, _Segment] = {}
        self.held: list[tuple[_Segment, int]] = []
        self._taken: dict[int, list[tuple[_Segment, int]]] = {}  # id(list) -> slots taken, not yet released
        self._lock = threading.Lock()

    def view(self, name: str, slot: int, shape: tuple[int, int, int]) -> np.ndarray:
        """The frame in ``slot`` of ring ``name`` (not copied); raises RingError if the name,
        slot or size does not fit the ring. The slot is held until :meth:`release_all`, or
        until :meth:`release` of the list :meth:`take_held` returns."""
        with self._lock:
            ring = self.open.get(name)
            if ring is None:
                if len(self.open) >= self.MAX_OPEN:
                    self._forget_one()
                ring = self.open[name] = _Segment(name)
            if not 0 <= slot < ring.slots:
                raise RingError(f"slot {slot} out of range for ring {name!r} ({ring.slots} slots)")
            if int(np.prod(shape)) > ring.slot_bytes:
                raise RingError(f"frame of shape {list(shape)} does not fit a {ring.slot_bytes}-byte slot")
            self.held.append((ring, slot))
            return ring.view(slot, shape)

    def take_held(self) -> list[tuple[_Segment, int]]:
        """The slots held since the last take (or release_all), for :meth:`release` later."""
        with self._lock:
            taken, self.held = self.held, []
            self._taken[id(taken)] = taken
            return taken

    def release(self, taken: list[tuple[_Segment, int]]) -> int:
        """Free the slots of a list :meth:`take_held` returned; returns how many."""
        with self._lock:
            self._taken.pop(id(taken), None)
            return self._free(taken)

    def release_all(self) -> None:
        """Free every held slot, taken or not."""
        with self._lock:
            for taken in self._taken.values():
                self._free(taken)
            self._taken = {}
            self._free(self.held)
            self.held = []

    @staticmethod
    def _free(slots) -> int:
        for ring, slot in slots:
            if ring.states is not None:
                ring.states[slot] = 0
        return len(slots)

    def _forget_one(self) -> None:
        in_use = {id(r) for r, _ in self.held}
        in_use |= {id(r) for taken in self._taken.values() for r, _ in taken}
        for name, ring in list(self.open.items()):
            if id(ring) not in in_use:
                ring.close()
                del self.open[name]
                return

    def close(self) -> None:
        self.release_all()
        with self._lock:
            for ring in self.open.values():
                ring.close()
            self.open = {}


def cleanup(prefix: str) -> int:
    """Unlink rings left behind by grabbers of a run (killed before they could); returns how many."""
    if not available():
        return 0
    n = 0
    for entry in os.listdir(SHM_DIR):
        if entry.startswith(prefix + "-"):
            try:
                os.unlink(os.path.join(SHM_DIR, entry))
                n += 1
            except OSError:
                pass
    return n
