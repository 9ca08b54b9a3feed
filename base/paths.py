"""Where vidtrack finds its shipped and pulled models."""
from __future__ import annotations

import os
from pathlib import Path

from base.errors import ModelError

SHIPPED_MODELS = Path(__file__).resolve().with_name("models")  # package data: installed with base
DEFAULT_DETECTOR = SHIPPED_MODELS / "detector-synthetic.keras"
DEFAULT_EMBEDDER = SHIPPED_MODELS / "embedder.keras"


def pulled_models_dir() -> Path:
    """Models fetched by ``vidtrack models pull`` ($VIDTRACK_MODELS or ~/.cache/vidtrack/models)."""
    return Path(os.environ.get("VIDTRACK_MODELS", Path.home() / ".cache" / "vidtrack" / "models"))


def resolve_model(name: str) -> str:
    """Turn a model name from config or the CLI into a path.

    ``default`` is the shipped synthetic-scene detector; a bare name is looked up among the
    shipped and the pulled models (``NAME.keras``); anything else is taken as a path.
    """
    if name == "default":
        candidates = [DEFAULT_DETECTOR]
    else:
        candidates = [Path(name).expanduser()]
        if "/" not in name and os.sep not in name:
            for folder in (SHIPPED_MODELS, pulled_models_dir()):
                candidates.append(folder / f"{name}.keras")
    for path in candidates:
        if path.exists():
            return str(path)
    raise ModelError(f"model {name!r} not found (looked at: {', '.join(str(p) for p in candidates)})")
