"""Darknet import/export: ``.cfg`` + ``.weights`` <-> a Keras model ending in YoloDecode.

    model = import_darknet("yolov4-tiny.cfg", "yolov4-tiny.weights", names="coco.names")
    export_darknet(model, "out.cfg", "out.weights")
"""
from __future__ import annotations

from pathlib import Path

from detector.darknet.cfg import Plan, parse_cfg, plan, plan_file, read_cfg  # noqa: F401
from detector.darknet.weights import (  # noqa: F401
    ConvWeights, random_weights, read_weights, write_random_weights, write_weights,
)
from base.errors import ModelError


def read_names(path) -> list[str]:
    """Class names, one per line (blank lines ignored)."""
    try:
        return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ModelError(f"cannot read names file {path}: {exc.strerror}") from None


def import_darknet(cfg_path, weights_path, names=None, name=None):
    """Build the Keras model for a Darknet cfg + weights; ``names`` is a path or a list of class names."""
    from detector.darknet.builder import build_model

    net = plan_file(cfg_path)
    _, convs = read_weights(weights_path, net)
    class_names = read_names(names) if isinstance(names, (str, Path)) else names
    return build_model(net, convs, class_names, name=name or Path(cfg_path).stem.replace(".", "_"))


def export_darknet(model, cfg_path, weights_path) -> tuple[int, int]:
    """Write ``model`` as Darknet cfg + weights; returns (number of layers, weights bytes)."""
    from detector.darknet.export import export_model

    return export_model(model, cfg_path, weights_path)
