"""Darknet ``.cfg`` parsing and shape inference.

:func:`parse_cfg` reads the ini-like file into :class:`Section` objects; :func:`plan`
walks the layers (``[net]`` excluded, so indices match Darknet's and OpenCV's) and returns
one :class:`LayerSpec` per layer with its resolved inputs, parameters and output shape
``(height, width, channels)`` in cells. Everything here is pure Python: the weights reader,
the random-weights writer and the Keras builder all share the same plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from base.errors import ModelError

SUPPORTED = ("convolutional", "maxpool", "route", "shortcut", "upsample", "dropout", "yolo")
ACTIVATIONS = ("linear", "leaky", "relu", "logistic", "mish", "swish", "tanh")
# cfg keys that change inference semantics and that this importer does not implement
_UNSUPPORTED_KEYS = {
    "convolutional": {"dilation": "1", "binary": "0", "xnor": "0", "antialiasing": "0", "share_index": None,
                      "stride_x": None, "stride_y": None, "deform": "0", "coordconv": "0", "assisted_excitation": "0"},
    "maxpool": {"stride_x": None, "stride_y": None, "maxpool_depth": "0", "antialiasing": "0"},
    "shortcut": {"weights_type": "none"},
    "yolo": {"new_coords": "0"},
    "route": {},
    "upsample": {},
    "dropout": {},
}


@dataclass
class Section:
    """One ``[type]`` block of a cfg: raw string options and the line it starts on."""

    type: str
    options: dict[str, str]
    line: int
    index: int = -1  # Darknet layer index (-1 for [net])

    def where(self) -> str:
        return f"layer {self.index} [{self.type}] (cfg line {self.line})"

    def _raw(self, key, default):
        if key in self.options:
            return self.options[key]
        if default is None:
            raise ModelError(f"{self.where()}: missing required key '{key}'")
        return default

    def int(self, key, default=None) -> int:
        raw = self._raw(key, default)
        try:
            return int(float(raw)) if isinstance(raw, str) else int(raw)
        except ValueError:
            raise ModelError(f"{self.where()}: '{key}={raw}' is not an integer") from None

    def float(self, key, default=None) -> float:
        raw = self._raw(key, default)
        try:
            return float(raw)
        except ValueError:
            raise ModelError(f"{self.where()}: '{key}={raw}' is not a number") from None

    def ints(self, key, default=None) -> list[int]:
        raw = self._raw(key, default)
        if not isinstance(raw, str):
            return list(raw)
        try:
            return [int(float(v)) for v in raw.split(",") if v.strip()]
        except ValueError:
            raise ModelError(f"{self.where()}: '{key}={raw}' is not a list of integers") from None

    def str(self, key, default=None) -> str:
        return str(self._raw(key, default)).strip()


@dataclass
class LayerSpec:
    """A resolved Darknet layer: absolute input indices, parameters, output (h, w, c)."""

    index: int
    type: str
    inputs: list[int]
    shape: tuple[int, int, int]
    params: dict = field(default_factory=dict)
    section: Section | None = None

    def where(self) -> str:
        return f"layer {self.index} [{self.type}]"


@dataclass
class Plan:
    """The network: input (h, w, c), layers in Darknet order."""

    input_shape: tuple[int, int, int]
    layers: list[LayerSpec]
    net: Section

    @property
    def convs(self) -> list[LayerSpec]:
        return [layer for layer in self.layers if layer.type == "convolutional"]

    @property
    def yolos(self) -> list[LayerSpec]:
        return [layer for layer in self.layers if layer.type == "yolo"]


def read_cfg(path) -> str:
    """Read a cfg file's text; ModelError if it cannot be read."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ModelError(f"cannot read cfg {path}: {exc.strerror}") from None


def parse_cfg(text: str) -> list[Section]:
    """Parse cfg text into sections; ``#`` and ``;`` start comments."""
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ModelError(f"cfg line {lineno}: malformed section header {line!r}")
            sections.append(Section(line[1:-1].strip().lower(), {}, lineno))
            continue
        if "=" not in line:
            raise ModelError(f"cfg line {lineno}: expected key=value, got {line!r}")
        if not sections:
            raise ModelError(f"cfg line {lineno}: option before the first [section]")
        key, value = line.split("=", 1)
        sections[-1].options[key.strip()] = value.strip()
    if not sections or sections[0].type not in ("net", "network"):
        raise ModelError("cfg must start with a [net] section")
    for i, sec in enumerate(sections[1:]):
        sec.index = i
    return sections


def _abs_index(sec: Section, ref: int, count: int) -> int:
    idx = sec.index + ref if ref < 0 else ref
    if not 0 <= idx < count:
        raise ModelError(f"{sec.where()}: refers to layer {ref} -> {idx}, which does not exist before it")
    return idx


def plan(sections: list[Section]) -> Plan:
    """Resolve every layer's inputs, parameters and output shape; raise ModelError naming the layer."""
    net = sections[0]
    h, w, c = net.int("height", 416), net.int("width", 416), net.int("channels", 3)
    if h <= 0 or w <= 0 or c <= 0:
        raise ModelError(f"[net]: width/height/channels must be positive, got {w}x{h}x{c}")
    layers: list[LayerSpec] = []
    prev = (h, w, c)
    for sec in sections[1:]:
        i = sec.index
        if sec.type not in SUPPORTED:
            raise ModelError(f"{sec.where()}: unsupported section type [{sec.type}] "
                             f"(supported: {', '.join(SUPPORTED)})")
        for key, ok in _UNSUPPORTED_KEYS[sec.type].items():
            if key in sec.options and (ok is None or sec.options[key].strip().lower() != ok):
                raise ModelError(f"{sec.where()}: option '{key}={sec.options[key]}' is not supported")
        inputs = [i - 1] if i > 0 else []
        in_shape = layers[i - 1].shape if i > 0 else prev
        if sec.type == "convolutional":
            spec = _conv(sec, in_shape)
        elif sec.type == "maxpool":
            size = sec.int("size", sec.int("stride", 1))
            stride = sec.int("stride", 1)
            padding = sec.int("padding", size - 1)
            oh, ow = (in_shape[0] + padding - size) // stride + 1, (in_shape[1] + padding - size) // stride + 1
            spec = dict(size=size, stride=stride, padding=padding), (oh, ow, in_shape[2])
        elif sec.type == "route":
            refs = sec.ints("layers")
            if not refs:
                raise ModelError(f"{sec.where()}: 'layers' is empty")
            inputs = [_abs_index(sec, r, i) for r in refs]
            shapes = [layers[j].shape for j in inputs]
            if len({s[:2] for s in shapes}) != 1:
                raise ModelError(f"{sec.where()}: routed layers {inputs} have different sizes {shapes}")
            groups, group_id = sec.int("groups", 1), sec.int("group_id", 0)
            total = sum(s[2] for s in shapes)
            if groups < 1 or total % groups or not 0 <= group_id < groups:
                raise ModelError(f"{sec.where()}: groups={groups} group_id={group_id} do not split {total} channels")
            spec = dict(groups=groups, group_id=group_id), (*shapes[0][:2], total // groups)
        elif sec.type == "shortcut":
            refs = sec.ints("from")
            if len(refs) != 1:
                raise ModelError(f"{sec.where()}: only one 'from' layer is supported, got {refs}")
            src = _abs_index(sec, refs[0], i)
            inputs = [i - 1, src]
            if layers[src].shape != in_shape:
                raise ModelError(f"{sec.where()}: shapes differ: {in_shape} vs layer {src} {layers[src].shape}")
            act = sec.str("activation", "linear").lower()
            if act not in ACTIVATIONS:
                raise ModelError(f"{sec.where()}: unsupported activation '{act}'")
            spec = dict(activation=act), in_shape
        elif sec.type == "upsample":
            stride = sec.int("stride", 2)
            if stride < 1:
                raise ModelError(f"{sec.where()}: only positive upsample strides are supported, got {stride}")
            if sec.float("scale", 1.0) != 1.0:
                raise ModelError(f"{sec.where()}: upsample 'scale' is not supported")
            spec = dict(stride=stride), (in_shape[0] * stride, in_shape[1] * stride, in_shape[2])
        elif sec.type == "dropout":
            spec = {}, in_shape
        else:  # yolo
            spec = _yolo(sec, in_shape, (h, w))
        params, shape = spec
        if min(shape) <= 0:
            raise ModelError(f"{sec.where()}: output shape {shape} is empty (input {in_shape})")
        layers.append(LayerSpec(i, sec.type, inputs, tuple(shape), params, sec))
    if not any(layer.type == "yolo" for layer in layers):
        raise ModelError("cfg has no [yolo] layer")
    for layer in layers:
        for j in layer.inputs:
            if layers[j].type == "yolo" and layer.type != "yolo":
                raise ModelError(f"{layer.where()}: reads the output of [yolo] layer {j}, which is not supported")
    return Plan((h, w, c), layers, net)


def _conv(sec: Section, in_shape):
    filters, size, stride = sec.int("filters", 1), sec.int("size", 1), sec.int("stride", 1)
    groups = sec.int("groups", 1)
    padding = size // 2 if sec.int("pad", 0) else sec.int("padding", 0)
    act = sec.str("activation", "logistic").lower()
    if act not in ACTIVATIONS:
        raise ModelError(f"{sec.where()}: unsupported activation '{act}' (supported: {', '.join(ACTIVATIONS)})")
    in_c = in_shape[2]
    if filters < 1 or size < 1 or stride < 1 or groups < 1 or in_c % groups or filters % groups:
        raise ModelError(f"{sec.where()}: bad filters={filters} size={size} stride={stride} groups={groups} "
                         f"for {in_c} input channels")
    oh = (in_shape[0] + 2 * padding - size) // stride + 1
    ow = (in_shape[1] + 2 * padding - size) // stride + 1
    params = dict(filters=filters, size=size, stride=stride, padding=padding, groups=groups, in_channels=in_c,
                  batch_normalize=bool(sec.int("batch_normalize", 0)), activation=act)
    return params, (oh, ow, filters)


def _yolo(sec: Section, in_shape, net_hw):
    classes = sec.int("classes", 20)
    anchors_flat = [float(v) for v in sec.str("anchors", "").split(",") if v.strip()] if "anchors" in sec.options else []
    if len(anchors_flat) % 2:
        raise ModelError(f"{sec.where()}: odd number of anchor values ({len(anchors_flat)})")
    anchors = [anchors_flat[k:k + 2] for k in range(0, len(anchors_flat), 2)]
    num = sec.int("num", len(anchors))
    mask = sec.ints("mask", ",".join(str(k) for k in range(num)))
    if any(not 0 <= m < len(anchors) for m in mask):
        raise ModelError(f"{sec.where()}: mask {mask} refers to anchors that do not exist ({len(anchors)} given)")
    want = len(mask) * (5 + classes)
    if in_shape[2] != want:
        raise ModelError(f"{sec.where()}: input has {in_shape[2]} channels, expected {len(mask)} anchors x "
                         f"(5 + {classes} classes) = {want}")
    params = dict(classes=classes, mask=mask, anchors=[anchors[m] for m in mask],
                  all_anchors=anchors, scale_x_y=sec.float("scale_x_y", 1.0))
    return params, in_shape


def plan_file(path) -> Plan:
    """Parse and plan a cfg file."""
    return plan(parse_cfg(read_cfg(path)))
