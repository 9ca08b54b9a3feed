"""Shared fixtures. Real data is read from ../shared/data (or $VIDTRACK_SHARED_DATA) and
tests that need it skip with a clear reason where it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import detector  # noqa: F401  (TensorFlow environment defaults, before any test module loads TensorFlow)

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("VIDTRACK_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set VIDTRACK_SHARED_DATA)")
    return path


def require(path: Path) -> Path:
    """Return ``path`` or skip the calling test, naming the missing file."""
    if not path.exists():
        pytest.skip(f"real data file missing: {path}")
    return path
