"""Known third-party detector models (official URLs + SHA-256) and the local models directory.

``vidtrack models pull NAME`` downloads a model's files, verifies them, converts them with the
Darknet importer and saves ``<models dir>/NAME.keras``; :func:`resolve_model` turns a config
value (a registered name or a path) into that file. The models dir is ``$VIDTRACK_MODELS``
or ``~/.cache/vidtrack/models``.

Checksums were computed from the copies in ``../shared/data`` (the same files as upstream);
``None`` means no trusted copy was available here: the download is then used unverified,
with a warning. Never fill one in without hashing the real file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from base.errors import ModelError

YOLO_FASTEST = "https://raw.githubusercontent.com/dog-qiuqiu/Yolo-Fastest/master/ModelZoo"
PJREDDIE_RAW = "https://raw.githubusercontent.com/pjreddie/darknet/master"
ALEXEYAB_RAW = "https://raw.githubusercontent.com/AlexeyAB/darknet/master"
COCO_NAMES_SHA = "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84"


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: its official URL and SHA-256 (None = unknown)."""

    url: str
    sha256: str | None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class KnownModel:
    name: str
    description: str
    cfg: ModelFile
    weights: ModelFile
    names: ModelFile

    @property
    def files(self) -> tuple[ModelFile, ModelFile, ModelFile]:
        return (self.cfg, self.weights, self.names)


MODELS: dict[str, KnownModel] = {m.name: m for m in [
    KnownModel(
        "yolo-fastest-1.1-body", "Yolo-Fastest 1.1, person only (body), 320x320, 0.27 M params",
        ModelFile(f"{YOLO_FASTEST}/yolo-fastest-1.1_body/yolo-fastest-1.1_body.cfg",
                  "045b8e276ebe3924474da8c866b7e709159ea067137b5d66bf9dd560411b2c1a"),
        ModelFile(f"{YOLO_FASTEST}/yolo-fastest-1.1_body/yolo-fastest-1.1_body.weights",
                  "5bbb6d878f6e2eb3deee39e91dc6f9b39700e99ec83fa94d258670a554949728"),
        ModelFile(f"{YOLO_FASTEST}/yolo-fastest-1.1_body/body.names",
                  "9e2ec912af5dff2a72300863864fc4da04e81999339d9fac5c7590ba8a3f4e11"),
    ),
    KnownModel(
        "yolo-fastest-1.1-coco", "Yolo-Fastest 1.1, COCO 80 classes, 320x320",
        ModelFile(f"{YOLO_FASTEST}/yolo-fastest-1.1_coco/yolo-fastest-1.1.cfg",
                  "f6df5775c1e862998cf69046eba9265be3ae84dfe8b2caab7529823f0795bf70"),
        ModelFile(f"{YOLO_FASTEST}/yolo-fastest-1.1_coco/yolo-fastest-1.1.weights",
                  "1c445c42bbd6df63edea2cc69f99667b5650d663ca11e34b116240740cd42890"),
        ModelFile(f"{PJREDDIE_RAW}/data/coco.names", COCO_NAMES_SHA),
    ),
    KnownModel(
        "yolo-fastest-1.1-xl-coco", "Yolo-Fastest 1.1 XL, COCO 80 classes, 320x320",
        ModelFile(f"{YOLO_FASTEST}/yolo-fastest-1.1_coco/yolo-fastest-1.1-xl.cfg",
                  "c458427acc4fbeabceff4528ef7b65b066c0308ce599460f8ba299eba63abad3"),
        ModelFile(f"{YOLO_FASTEST}/yolo-fastest-1.1_coco/yolo-fastest-1.1-xl.weights",
                  "fac5fb41786c1f38f04972a658443b189f48720d7d117f9a044100e98a35b0c5"),
        ModelFile(f"{PJREDDIE_RAW}/data/coco.names", COCO_NAMES_SHA),
    ),
    KnownModel(
        "yolov4-tiny", "YOLOv4-tiny (AlexeyAB), COCO 80 classes, 416x416",
        ModelFile(f"{ALEXEYAB_RAW}/cfg/yolov4-tiny.cfg",
                  "f858e3724962eedf3ac44e3b6cb3f0c3d9ed067c306bb831f539c578b924c90e"),
        ModelFile("https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v4_pre/yolov4-tiny.weights",
                  None),
        ModelFile(f"{PJREDDIE_RAW}/data/coco.names", COCO_NAMES_SHA),
    ),
    KnownModel(
        "yolov3-tiny", "YOLOv3-tiny (pjreddie), COCO 80 classes, 416x416",
        ModelFile(f"{PJREDDIE_RAW}/cfg/yolov3-tiny.cfg",
                  "84eb7a675ef87c906019ff5a6e0effe275d175adb75100dcb47f0727917dc2c7"),
        ModelFile("https://pjreddie.com/media/files/yolov3-tiny.weights", None),
        ModelFile(f"{PJREDDIE_RAW}/data/coco.names", COCO_NAMES_SHA),
    ),
]}


def models_dir(override=None) -> Path:
    """Where pulled models live: ``override``, else $VIDTRACK_MODELS, else ~/.cache/vidtrack/models."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("VIDTRACK_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vidtrack" / "models"


def get(name: str) -> KnownModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def model_path(name: str, directory=None) -> Path:
    """The ``.keras`` file a pulled model is saved as."""
    return models_dir(directory) / f"{name}.keras"


def installed(directory=None) -> list[Path]:
    """All ``.keras`` files in the models dir."""
    d = models_dir(directory)
    return sorted(d.glob("*.keras")) if d.is_dir() else []


def resolve_model(name_or_path, directory=None) -> Path:
    """A config value -> model path: an existing path as is, else a pulled model's name."""
    p = Path(str(name_or_path)).expanduser()
    if p.exists():
        return p
    candidate = model_path(str(name_or_path), directory)
    if candidate.is_file():
        return candidate
    hint = f"; run `vidtrack models pull {name_or_path}`" if str(name_or_path) in MODELS else ""
    raise ModelError(f"model {name_or_path!r} is neither a file nor a pulled model in {models_dir(directory)}{hint}")
