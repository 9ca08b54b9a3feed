"""A direct NumPy implementation of Darknet inference (test oracle for the Keras builder).

Written from darknet's C semantics (symmetric conv padding, BN with sqrt(var) + 1e-6,
max-pool offset -padding/2 with out-of-range cells ignored, route groups, yolo decode),
independently of :mod:`detector.darknet.builder`. Slow; only for small inputs.
"""
from __future__ import annotations

import numpy as np


def _act(x, name):
    if name == "linear":
        return x
    if name == "leaky":
        return np.where(x > 0, x, 0.1 * x)
    if name == "relu":
        return np.maximum(x, 0)
    if name == "logistic":
        return 1 / (1 + np.exp(-x))
    if name == "mish":
        return x * np.tanh(np.log1p(np.exp(x)))
    if name == "swish":
        return x / (1 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    raise ValueError(name)


def _conv(x, spec, w):
    p = spec.params
    k, s, pad, g = p["size"], p["stride"], p["padding"], p["groups"]
    b, h, wd, c = x.shape
    oh, ow = (h + 2 * pad - k) // s + 1, (wd + 2 * pad - k) // s + 1
    xp = np.pad(x, ((0, 0), (pad, pad + s), (pad, pad + s), (0, 0)))
    out = np.zeros((b, oh, ow, p["filters"]), np.float64)
    cin, cout = c // g, p["filters"] // g
    for gi in range(g):
        kern = w.kernel[gi * cout:(gi + 1) * cout].astype(np.float64)  # [cout, cin, k, k]
        for ky in range(k):
            for kx in range(k):
                patch = xp[:, ky:ky + s * oh:s, kx:kx + s * ow:s, gi * cin:(gi + 1) * cin]
                out[..., gi * cout:(gi + 1) * cout] += patch @ kern[:, :, ky, kx].T
    if w.batch_normalize:
        out = (out - w.mean) / (np.sqrt(w.var) + 1e-6) * w.scales
    return _act(out + w.biases, p["activation"])


def _maxpool(x, spec):
    size, stride, padding = spec.params["size"], spec.params["stride"], spec.params["padding"]
    b, h, w, c = x.shape
    oh, ow = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    off = -(padding // 2)
    out = np.full((b, oh, ow, c), -np.inf)
    for i in range(oh):
        for j in range(ow):
            for ky in range(size):
                for kx in range(size):
                    y, xx = off + i * stride + ky, off + j * stride + kx
                    if 0 <= y < h and 0 <= xx < w:
                        out[:, i, j] = np.maximum(out[:, i, j], x[:, y, xx])
    return out


def _yolo(x, spec, net_hw):
    p = spec.params
    b, gh, gw, _ = x.shape
    a, c, sxy = len(p["anchors"]), p["classes"], p["scale_x_y"]
    t = x.reshape(b, gh, gw, a, 5 + c)
    sig = 1 / (1 + np.exp(-t))
    col = np.arange(gw)[None, None, :, None]
    row = np.arange(gh)[None, :, None, None]
    cx = (sig[..., 0] * sxy - (sxy - 1) / 2 + col) / gw * net_hw[1]
    cy = (sig[..., 1] * sxy - (sxy - 1) / 2 + row) / gh * net_hw[0]
    anchors = np.asarray(p["anchors"], np.float64)
    bw, bh = np.exp(t[..., 2]) * anchors[:, 0], np.exp(t[..., 3]) * anchors[:, 1]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1).reshape(b, -1, 4)
    return boxes, sig[..., 4].reshape(b, -1), sig[..., 5:].reshape(b, -1, c)


def forward(net, convs, x):
    """x float[B,H,W,C] -> (boxes [B,N,4] input px, objectness [B,N], class_probs [B,N,C]), float64."""
    outs, dets = [], []
    x = np.asarray(x, np.float64)
    for spec in net.layers:
        inp = outs[spec.inputs[0]] if spec.inputs else x
        if spec.type == "convolutional":
            y = _conv(inp, spec, convs[spec.index])
        elif spec.type == "maxpool":
            y = _maxpool(inp, spec)
        elif spec.type == "route":
            y = np.concatenate([outs[j] for j in spec.inputs], -1)
            g, gid = spec.params["groups"], spec.params["group_id"]
            n = y.shape[-1] // g
            y = y[..., gid * n:(gid + 1) * n]
        elif spec.type == "shortcut":
            y = _act(inp + outs[spec.inputs[1]], spec.params["activation"])
        elif spec.type == "upsample":
            s = spec.params["stride"]
            y = inp.repeat(s, 1).repeat(s, 2)
        elif spec.type == "dropout":
            y = inp
        else:
            dets.append(_yolo(inp, spec, net.input_shape[:2]))
            y = inp
        outs.append(y)
    return tuple(np.concatenate([d[k] for d in dets], 1) for k in range(3))
