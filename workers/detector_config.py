"""The ``[detector]`` table, and the cheap checks that its model and embedder name real
models (file headers only: TensorFlow is not loaded to validate a config)."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from base.errors import ModelError
from base.paths import resolve_model
from base.settings import setting
from detector.appearance import EMBEDDER_NAMES, embedder_parts
from detector.runtime import BATCH_SIZES



def keras_file_problem(path: Path) -> str | None:
    """What stops ``path`` from being a ``.keras`` model file (a zip archive), or None."""
    if path.suffix != ".keras":
        return f"{str(path)!r} is not a .keras file"
    if not path.is_file():
        return f"model file {str(path)!r} not found"
    if not zipfile.is_zipfile(path):
        return f"{str(path)!r} is not a Keras model (not a zip archive)"
    return None


def model_problem(name: str) -> str | None:
    """What is wrong with a detector model name (see :func:`base.paths.resolve_model`), or None."""
    try:
        path = Path(resolve_model(name))
    except ModelError as exc:
        return str(exc)
    if path.is_dir():  # as Detector.load refuses it
        return f"{str(path)!r} is a folder, not a .keras model file"
    return keras_file_problem(path)


def embedder_problem(spec: str) -> str | None:
    """What is wrong with an embedder spec ("none", "histogram", "default", a .keras path,
    or parts joined by "+", as :func:`detector.appearance.embedder_parts` reads it), or None."""
    try:
        parts = embedder_parts(spec)
    except ModelError as exc:
        return str(exc)
    for part in parts:
        problem = None if part in EMBEDDER_NAMES else keras_file_problem(Path(part).expanduser())
        if problem:
            return problem
    return None


@dataclass
class DetectorConfig:
    """Which models detect and embed, and how frames are batched for them."""

    model: str = setting("default", check=model_problem)  # "default", a pulled model name, a .keras file
    embedder: str = setting("histogram", check=embedder_problem)  # "histogram", "default", "none", a .keras path, "A+B"
    conf_threshold: float = setting(0.25, minimum=0.0, maximum=1.0)
    iou_threshold: float = setting(0.45, minimum=0.0, maximum=1.0)
    batch_size: int = setting(8, minimum=1, maximum=BATCH_SIZES[-1])  # frames per network call
    batch_wait_ms: float = setting(2.0, minimum=0.0)  # wait for more frames after the first of a batch
    workers: int = setting(1, minimum=1)  # detector processes pulling from the same frame sockets
    threads: int = setting(0, minimum=0)  # TensorFlow intra-op threads per process, 0 = all cores but one
    # (with pin_cpus: its cores)
    pin_cpus: bool = True  # detector processes on cores of their own, grabbers + tracker on the rest (workers.affinity)
    prefetch: bool = True  # a second thread receives and letterboxes the next batch while the network runs
    # (the network thread letterboxes what is left of it when it gets there first)
