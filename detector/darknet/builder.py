"""Build a Keras model from a Darknet plan and conv weights.

The model maps ``float32[B, H, W, C]`` (RGB, 0..1, Darknet's input) to
``YoloDecode``'s (boxes, objectness, class_probs). Batch norm is folded into the conv
kernel and bias at import (inference only), padding follows Darknet exactly (explicit
symmetric zero padding for strided convs, -inf padding for pools), dropout is dropped.
Layers are named ``dn{index}_{kind}`` after their Darknet layer index.
"""
from __future__ import annotations

import numpy as np

from detector.darknet.cfg import LayerSpec, Plan
from detector.darknet.weights import ConvWeights
from base.errors import ModelError

BN_EPS = 1e-6  # darknet: (x - mean) / (sqrt(var) + .000001)


def fold_bn(w: ConvWeights) -> tuple[np.ndarray, np.ndarray]:
    """(kernel[out, in/g, k, k], bias[out]) with Darknet batch norm folded in."""
    if not w.batch_normalize:
        return w.kernel.astype(np.float32), w.biases.astype(np.float32)
    factor = w.scales / (np.sqrt(np.maximum(w.var, 0.0)) + BN_EPS)
    kernel = w.kernel * factor[:, None, None, None]
    bias = w.biases - w.mean * factor
    return kernel.astype(np.float32), bias.astype(np.float32)


def activation_layer(name: str, layer_name: str):
    import keras

    if name == "linear":
        return None
    if name == "leaky":
        return keras.layers.LeakyReLU(negative_slope=0.1, name=layer_name)
    mapping = {"relu": "relu", "logistic": "sigmoid", "mish": "mish", "swish": "silu", "tanh": "tanh"}
    return keras.layers.Activation(mapping[name], name=layer_name)


def _same_matches(n: int, size: int, stride: int, before: int, out: int) -> bool:
    """Whether Keras 'same' padding gives Darknet's output size and leading pad."""
    k_out = -(-n // stride)
    k_before = max((k_out - 1) * stride + size - n, 0) // 2
    return k_out == out and k_before == before


def _conv(x, spec: LayerSpec, w: ConvWeights):
    import keras

    p, i = spec.params, spec.index
    kernel, bias = fold_bn(w)
    pad, size, stride = p["padding"], p["size"], p["stride"]
    h, wdt = x.shape[1], x.shape[2]
    oh, ow = spec.shape[:2]
    if _same_matches(h, size, stride, pad, oh) and _same_matches(wdt, size, stride, pad, ow) and \
            (pad > 0 or size == 1):
        mode = "same" if pad > 0 else "valid"
    else:
        mode = "valid"
        if pad:
            x = keras.layers.ZeroPadding2D(pad, name=f"dn{i}_pad")(x)
    depthwise = p["groups"] > 1 and p["groups"] == p["in_channels"] == p["filters"]
    if depthwise:
        layer = keras.layers.DepthwiseConv2D(size, stride, mode, use_bias=True, name=f"dn{i}_conv")
        y = layer(x)
        layer.set_weights([kernel.transpose(2, 3, 0, 1), bias])
    else:
        layer = keras.layers.Conv2D(p["filters"], size, stride, mode, groups=p["groups"], use_bias=True,
                                    name=f"dn{i}_conv")
        y = layer(x)
        layer.set_weights([kernel.transpose(2, 3, 1, 0), bias])
    act = activation_layer(p["activation"], f"dn{i}_act")
    return act(y) if act is not None else y


def _maxpool(x, spec: LayerSpec):
    import keras

    from detector.darknet.layers import DarknetMaxPool

    p, i = spec.params, spec.index
    size, stride, padding = p["size"], p["stride"], p["padding"]
    h, w = x.shape[1], x.shape[2]
    oh, ow = spec.shape[:2]
    if _same_matches(h, size, stride, padding // 2, oh) and _same_matches(w, size, stride, padding // 2, ow):
        return keras.layers.MaxPooling2D(size, stride, "same", name=f"dn{i}_pool")(x)
    return DarknetMaxPool(size, stride, padding, name=f"dn{i}_pool")(x)


def build_model(net: Plan, convs: dict[int, ConvWeights], class_names=None, name="darknet"):
    """Keras functional model for ``net`` filled with ``convs``; ends in YoloDecode."""
    import keras

    from detector.darknet.layers import ChannelGroup
    from detector.decode import YoloDecode

    h, w, c = net.input_shape
    inp = keras.Input((h, w, c), name="image", dtype="float32")
    outs: list = []
    heads, yolos = [], []
    for spec in net.layers:
        i = spec.index
        x = outs[spec.inputs[0]] if spec.inputs else inp
        if spec.type == "convolutional":
            if i not in convs:
                raise ModelError(f"{spec.where()}: no weights")
            y = _conv(x, spec, convs[i])
        elif spec.type == "maxpool":
            y = _maxpool(x, spec)
        elif spec.type == "route":
            parts = [outs[j] for j in spec.inputs]
            y = parts[0] if len(parts) == 1 else keras.layers.Concatenate(axis=-1, name=f"dn{i}_route")(parts)
            if spec.params["groups"] > 1:
                y = ChannelGroup(spec.params["groups"], spec.params["group_id"], name=f"dn{i}_group")(y)
        elif spec.type == "shortcut":
            y = keras.layers.Add(name=f"dn{i}_shortcut")([x, outs[spec.inputs[1]]])
            act = activation_layer(spec.params["activation"], f"dn{i}_act")
            y = act(y) if act is not None else y
        elif spec.type == "upsample":
            s = spec.params["stride"]
            y = x if s == 1 else keras.layers.UpSampling2D(s, interpolation="nearest", name=f"dn{i}_upsample")(x)
        elif spec.type == "dropout":
            y = x
        else:  # yolo: the raw head is its input
            heads.append(x)
            yolos.append(spec)
            y = x
        outs.append(y)
    classes = {y.params["classes"] for y in yolos}
    if len(classes) != 1:
        raise ModelError(f"[yolo] layers disagree on the number of classes: {sorted(classes)}")
    num_classes = classes.pop()
    if class_names is not None and len(class_names) != num_classes:
        raise ModelError(f"names file has {len(class_names)} names, the cfg has {num_classes} classes")
    decode = YoloDecode(
        anchors=[y.params["anchors"] for y in yolos],
        num_classes=num_classes,
        input_size=(h, w),
        scale_x_y=[y.params["scale_x_y"] for y in yolos],
        class_names=class_names,
        name="decode",
    )
    outputs = decode(heads)
    return keras.Model(inp, list(outputs), name=name)


def heads_model(model):
    """A model from the same input to the raw YOLO heads (inputs of the YoloDecode layer)."""
    import keras

    from detector.decode import YoloDecode

    decode = [layer for layer in model.layers if isinstance(layer, YoloDecode)]
    if not decode:
        raise ModelError("model has no YoloDecode layer")
    heads = decode[-1]._inbound_nodes[0].input_tensors
    return keras.Model(model.inputs, list(heads))
