"""File seek for rewinds: :meth:`workers.sources.VideoSource.seek` (a container seek to a
marked frame, checked by its fingerprint) against decoding from the start, the way a rewound
grabber seeked before. Same frames (checked), time per seek.

    .venv/bin/python bench/seek.py [VIDEO ...]     # default: ../shared/data/videos/*
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workers.sources import VideoSource  # noqa: E402

DATA = Path(os.environ.get("VIDTRACK_SHARED_DATA", ROOT.parent / "shared" / "data"))


def bench(path: Path) -> None:
    source = VideoSource(str(path))
    frames = 0
    while source.read() is not None:  # the first pass marks frames, as a grabber's sending does
        frames += 1
    for target in (frames - 10, frames // 2):
        start = time.perf_counter()
        source.seek(target)
        sought = time.perf_counter() - start
        image = source.read()[1]
        start = time.perf_counter()
        source.seek(0)
        source.skip(target)  # decoding from the start
        decoded = time.perf_counter() - start
        assert np.array_equal(image, source.read()[1]), f"{path.name}: seek to {target} gave another frame"
        print(f"{path.name:<24}{frames:>7}{target:>8}{sought * 1000:>10.0f}{decoded * 1000:>12.0f}{decoded / sought:>8.1f}"
              f"{source.seek_misses:>7}")
    source.close()


def main() -> int:
    paths = [Path(p) for p in sys.argv[1:]] or sorted((DATA / "videos").glob("*.*"))
    if not paths:
        print(f"no videos under {DATA / 'videos'}: pass some", file=sys.stderr)
        return 1
    print(f"{'video':<24}{'frames':>7}{'to':>8}{'seek ms':>10}{'decode ms':>12}{'ratio':>8}{'misses':>7}")
    for path in paths:
        bench(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
