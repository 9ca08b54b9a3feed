"""Darknet ``.weights`` files: read, write, and realistic random values.

Layout: header int32 major, minor, revision, then ``seen`` (int64 when
major * 10 + minor >= 2, else int32); then, for each ``[convolutional]`` layer in order,
float32 little-endian: biases[out], when batch_normalize: scales[out], rolling_mean[out],
rolling_variance[out]; then weights[out, in / groups, size, size].
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.darknet.cfg import LayerSpec, Plan
from base.errors import ModelError

DEFAULT_HEADER = (0, 2, 5, 0)


@dataclass
class ConvWeights:
    """One conv layer's parameters in Darknet order; BN arrays are None without BN.

    kernel: float32[out, in / groups, size, size]
    """

    biases: np.ndarray
    kernel: np.ndarray
    scales: np.ndarray | None = None
    mean: np.ndarray | None = None
    var: np.ndarray | None = None

    @property
    def batch_normalize(self) -> bool:
        return self.scales is not None


def kernel_shape(spec: LayerSpec) -> tuple[int, int, int, int]:
    p = spec.params
    return (p["filters"], p["in_channels"] // p["groups"], p["size"], p["size"])


def conv_value_count(spec: LayerSpec) -> int:
    """Number of float32 values a conv layer occupies in a .weights file."""
    out = spec.params["filters"]
    return out * (4 if spec.params["batch_normalize"] else 1) + int(np.prod(kernel_shape(spec)))


def header_size(major: int, minor: int) -> int:
    return 20 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 16


def read_weights(path, net: Plan) -> tuple[tuple[int, int, int, int], dict[int, ConvWeights]]:
    """Read a .weights file for ``net``: (header, {layer index: ConvWeights}).

    Raises ModelError naming the layer when the file is short, and when bytes are left over.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read weights {path}: {exc.strerror}") from None
    if len(data) < 16:
        raise ModelError(f"{path}: {len(data)} bytes is too short for a Darknet weights header (16 or 20 bytes)")
    major, minor, revision = (int(v) for v in np.frombuffer(data, "<i4", 3))
    hs = header_size(major, minor)
    if len(data) < hs:
        raise ModelError(f"{path}: truncated header ({len(data)} of {hs} bytes)")
    seen = int(np.frombuffer(data, "<i8" if hs == 20 else "<i4", 1, 12)[0])
    if (len(data) - hs) % 4:
        raise ModelError(f"{path}: body of {len(data) - hs} bytes is not a whole number of float32 values")
    values = np.frombuffer(data, "<f4", offset=hs)
    pos, convs = 0, {}
    for spec in net.convs:
        need = conv_value_count(spec)
        have = len(values) - pos
        if have < need:
            raise ModelError(f"{path}: truncated at {spec.where()}: expected {need} float32 values, "
                             f"{have} present ({len(data)} bytes in file; does the cfg match?)")
        out = spec.params["filters"]
        chunk = values[pos:pos + need]
        biases, k = chunk[:out], out
        scales = mean = var = None
        if spec.params["batch_normalize"]:
            scales, mean, var = chunk[out:2 * out], chunk[2 * out:3 * out], chunk[3 * out:4 * out]
            k = 4 * out
        kernel = chunk[k:].reshape(kernel_shape(spec))
        convs[spec.index] = ConvWeights(biases.copy(), kernel.copy(),
                                        *(None if a is None else a.copy() for a in (scales, mean, var)))
        pos += need
    if pos != len(values):
        last = net.convs[-1].where() if net.convs else "the header"
        extra = len(values) - pos
        raise ModelError(f"{path}: {extra} float32 values ({extra * 4} bytes) left over after {last}; "
                         f"expected {pos * 4 + hs} bytes in all, file has {len(data)} (does the cfg match?)")
    return (major, minor, revision, seen), convs


def write_weights(path, net: Plan, convs: dict[int, ConvWeights], header=DEFAULT_HEADER) -> int:
    """Write ``convs`` (one per conv layer of ``net``) as a .weights file; returns its size in bytes."""
    major, minor, revision, seen = header
    parts = [np.array([major, minor, revision], "<i4").tobytes(),
             np.array([seen], "<i8" if header_size(major, minor) == 20 else "<i4").tobytes()]
    for spec in net.convs:
        w = convs[spec.index]
        if w.kernel.shape != kernel_shape(spec) or w.biases.shape != (spec.params["filters"],):
            raise ModelError(f"{spec.where()}: kernel {w.kernel.shape} / biases {w.biases.shape} do not match "
                             f"the cfg ({kernel_shape(spec)})")
        if w.batch_normalize != spec.params["batch_normalize"]:
            raise ModelError(f"{spec.where()}: batch_normalize differs between cfg and weights")
        arrays = [w.biases] + ([w.scales, w.mean, w.var] if w.batch_normalize else []) + [w.kernel]
        parts.extend(np.ascontiguousarray(a, "<f4").tobytes() for a in arrays)
    blob = b"".join(parts)
    Path(path).write_bytes(blob)
    return len(blob)


def random_weights(net: Plan, seed: int = 0) -> dict[int, ConvWeights]:
    """Realistic random parameters: He-scaled kernels, BN gamma ~ 1, positive variances, small biases;
    YOLO head biases start objectness near sigmoid(-2) and classes near sigmoid(-1), as trained heads do."""
    rng = np.random.default_rng(seed)
    convs = {}
    heads = {y.inputs[0]: y for y in net.yolos}
    for spec in net.convs:
        shape = kernel_shape(spec)
        out, fan_in = shape[0], int(np.prod(shape[1:]))
        kernel = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        if spec.params["batch_normalize"]:
            convs[spec.index] = ConvWeights(
                biases=rng.normal(0.0, 0.1, out).astype(np.float32),
                kernel=kernel,
                scales=rng.normal(1.0, 0.1, out).astype(np.float32),
                mean=rng.normal(0.0, 0.1, out).astype(np.float32),
                var=rng.uniform(0.5, 1.5, out).astype(np.float32),
            )
        else:
            biases = rng.normal(0.0, 0.5, out).astype(np.float32)
            if spec.index in heads:  # like a trained head: few cells with objects, few likely classes
                t = biases.reshape(len(heads[spec.index].params["mask"]), -1)
                t[:, 4] -= 2.0
                t[:, 5:] -= 1.0
            convs[spec.index] = ConvWeights(biases, kernel)
    return convs


def write_random_weights(path, net: Plan, seed: int = 0) -> int:
    """Write a random-valued .weights file for ``net``; returns its size in bytes."""
    return write_weights(path, net, random_weights(net, seed))
