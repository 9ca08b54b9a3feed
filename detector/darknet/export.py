"""Write a Keras detector (graph ending in YoloDecode) as Darknet ``.cfg`` + ``.weights``.

Walks the functional graph in topological order and maps each Keras layer to Darknet:
[ZeroPadding2D ->] Conv2D / DepthwiseConv2D [-> BatchNormalization] [-> activation] become
one ``[convolutional]`` (BN re-expressed with Darknet's epsilon), MaxPooling2D /
DarknetMaxPool ``[maxpool]``, UpSampling2D ``[upsample]``, Concatenate ``[route]``,
ChannelGroup ``[route] groups``, Add ``[shortcut]``, Dropout nothing, YoloDecode one
``[yolo]`` per head. Anything else, and Keras 'same' padding that Darknet's symmetric padding
cannot reproduce (stride > 1 on even sizes), raises ModelError naming the layer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.darknet.builder import BN_EPS
from detector.darknet.cfg import plan, parse_cfg
from detector.darknet.weights import ConvWeights, write_weights
from base.errors import ModelError

_ACT = {"linear": "linear", "relu": "relu", "sigmoid": "logistic", "mish": "mish", "silu": "swish",
        "swish": "swish", "tanh": "tanh"}


def _act_name(layer) -> str | None:
    """Darknet activation for a Keras activation layer (or None if not one)."""
    import keras

    if isinstance(layer, keras.layers.LeakyReLU):
        slope = float(getattr(layer, "negative_slope", getattr(layer, "alpha", 0.3)))
        return "leaky" if abs(slope - 0.1) < 1e-6 else None
    if isinstance(layer, keras.layers.ReLU):
        return "relu" if layer.max_value is None and not layer.negative_slope and not layer.threshold else None
    if isinstance(layer, keras.layers.Activation):
        return _ACT.get(keras.activations.serialize(layer.activation)
                        if not isinstance(layer.activation, str) else layer.activation)
    return None


def _fn_act(fn) -> str | None:
    import keras

    name = fn if isinstance(fn, str) else keras.activations.serialize(fn)
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    return _ACT.get(name)


class _Exporter:
    def __init__(self, model):
        self.model = model
        self.sections: list[tuple[str, dict]] = []  # (type, options)
        self.weights: dict[int, ConvWeights] = {}
        self.ref: dict[int, object] = {}  # id(keras tensor) -> darknet index | ("pad", index, p) | "input"
        self.consumers: dict[int, int] = {}
        self.shape: dict[int, tuple] = {}

    # -- helpers
    def emit(self, kind, options, tensor=None) -> int:
        self.sections.append((kind, options))
        idx = len(self.sections) - 1
        if tensor is not None:
            self.ref[id(tensor)] = idx
        return idx

    def src(self, tensor, layer) -> int:
        r = self.ref.get(id(tensor))
        if r is None:
            raise ModelError(f"layer {layer.name!r}: input not produced by an exportable layer")
        if isinstance(r, tuple):
            raise ModelError(f"layer {layer.name!r}: ZeroPadding2D output must feed a convolution directly")
        return r

    def as_previous(self, tensor, layer) -> None:
        """Make ``tensor`` the output of the last emitted layer (Darknet's implicit input)."""
        r = self.src(tensor, layer)
        if r == "input":
            if self.sections:
                raise ModelError(f"layer {layer.name!r}: reads the network input after other layers; "
                                 "Darknet cannot route to the input")
            return
        if r != len(self.sections) - 1:
            self.emit("route", {"layers": str(r - len(self.sections))})

    def single_use(self, tensor) -> bool:
        return self.consumers.get(id(tensor), 0) == 1

    # -- walk
    def run(self):
        import keras

        from detector.darknet.layers import ChannelGroup, DarknetMaxPool
        from detector.decode import YoloDecode

        model = self.model
        if len(model.inputs) != 1:
            raise ModelError("only single-input models can be exported")
        inp = model.inputs[0]
        self.ref[id(inp)] = "input"
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        nodes = {}
        for layer in layers:
            if len(layer._inbound_nodes) != 1:
                raise ModelError(f"layer {layer.name!r} is used {len(layer._inbound_nodes)} times; "
                                 "shared layers cannot be exported")
            node = layer._inbound_nodes[0]
            nodes[layer.name] = node
            for t in node.input_tensors:
                self.consumers[id(t)] = self.consumers.get(id(t), 0) + 1
        for t in model.outputs:
            self.consumers[id(t)] = self.consumers.get(id(t), 0) + 1
        decodes = [layer for layer in layers if isinstance(layer, YoloDecode)]
        if len(decodes) != 1:
            raise ModelError(f"model must have exactly one YoloDecode layer, found {len(decodes)}")
        decode_layer = decodes[0]
        heads = list(nodes[decode_layer.name].input_tensors)
        self.yolo_done = 0
        decode = None
        for layer in layers:
            node = nodes[layer.name]
            ins, outs = list(node.input_tensors), list(node.output_tensors)
            self.emit_ready_yolos(decode_layer, heads)
            if isinstance(layer, YoloDecode):
                decode = (layer, ins)
                continue
            if decode is not None:
                raise ModelError(f"layer {layer.name!r} comes after YoloDecode; the decode must be last")
            out = outs[0]
            if isinstance(layer, keras.layers.ZeroPadding2D):
                (t, b), (lft, r) = layer.padding
                if not t == b == lft == r:
                    raise ModelError(f"layer {layer.name!r}: asymmetric padding {layer.padding} is not Darknet")
                self.ref[id(out)] = ("pad", self.src(ins[0], layer), int(t))
            elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
                self.conv(layer, ins[0], out)
            elif isinstance(layer, keras.layers.BatchNormalization):
                self.batchnorm(layer, ins[0], out)
            elif _act_name(layer) is not None:
                self.activation(layer, ins[0], out, _act_name(layer))
            elif isinstance(layer, (keras.layers.MaxPooling2D, DarknetMaxPool)):
                self.maxpool(layer, ins[0], out)
            elif isinstance(layer, keras.layers.UpSampling2D):
                s = tuple(layer.size)
                if s[0] != s[1] or layer.interpolation != "nearest":
                    raise ModelError(f"layer {layer.name!r}: only square nearest upsampling is Darknet")
                self.as_previous(ins[0], layer)
                self.emit("upsample", {"stride": s[0]}, out)
            elif isinstance(layer, keras.layers.Concatenate):
                if layer.axis not in (-1, 3):
                    raise ModelError(f"layer {layer.name!r}: only channel concatenation is Darknet")
                n = len(self.sections)
                refs = [self.src(t, layer) for t in ins]
                if "input" in refs:
                    raise ModelError(f"layer {layer.name!r}: cannot route the network input")
                self.emit("route", {"layers": ",".join(str(r - n) for r in refs)}, out)
            elif isinstance(layer, ChannelGroup):
                r = self.src(ins[0], layer)
                self.emit("route", {"layers": str(r - len(self.sections)), "groups": layer.groups,
                                    "group_id": layer.group_id}, out)
            elif isinstance(layer, keras.layers.Add):
                if len(ins) != 2:
                    raise ModelError(f"layer {layer.name!r}: only two-input Add is a Darknet shortcut")
                a, b = (self.src(t, layer) for t in ins)
                if b == len(self.sections) - 1:
                    a, b = b, a
                self.as_previous(ins[0] if a == self.src(ins[0], layer) else ins[1], layer)
                self.emit("shortcut", {"from": str(b - len(self.sections)), "activation": "linear"}, out)
            elif isinstance(layer, keras.layers.Dropout):
                self.ref[id(out)] = self.ref.get(id(ins[0]))
            else:
                raise ModelError(f"layer {layer.name!r} ({type(layer).__name__}) has no Darknet equivalent")
        if decode is None:
            raise ModelError("model has no YoloDecode layer")
        self.yolo(*decode)

    def conv(self, layer, x, out):
        import keras

        r = self.ref.get(id(x))
        pad = None
        if isinstance(r, tuple):
            _, src_idx, pad = r
            if src_idx != "input" and src_idx != len(self.sections) - 1:
                self.emit("route", {"layers": str(src_idx - len(self.sections))})
        else:
            self.as_previous(x, layer)
        ks, st = tuple(layer.kernel_size), tuple(layer.strides)
        if ks[0] != ks[1] or st[0] != st[1] or tuple(layer.dilation_rate) != (1, 1):
            raise ModelError(f"layer {layer.name!r}: needs square kernel/stride and no dilation")
        k, s = ks[0], st[0]
        n_h, n_w = x.shape[1], x.shape[2]
        if layer.padding == "same":
            if pad:
                raise ModelError(f"layer {layer.name!r}: 'same' padding after ZeroPadding2D")
            pad = (k - 1) // 2 if k % 2 else None
            for n in (n_h, n_w):
                k_out = -(-n // s)
                total = max((k_out - 1) * s + k - n, 0)
                if pad is None or total // 2 != pad or (n + 2 * pad - k) // s + 1 != k_out:
                    raise ModelError(
                        f"layer {layer.name!r}: Keras 'same' padding (kernel {k}, stride {s}, input {n}) pads "
                        f"{total // 2} before / {total - total // 2} after; Darknet pads symmetrically. "
                        "Use ZeroPadding2D + 'valid' for Darknet-compatible strided convs")
        pad = pad or 0
        weights = layer.get_weights()
        kernel = weights[0]
        bias = weights[1] if layer.use_bias else np.zeros(out.shape[-1], np.float32)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            if layer.depth_multiplier != 1:
                raise ModelError(f"layer {layer.name!r}: depth_multiplier != 1")
            dn_kernel = kernel.transpose(2, 3, 0, 1)
            groups = kernel.shape[2]
        else:
            dn_kernel = kernel.transpose(3, 2, 0, 1)
            groups = int(layer.groups)
        act = _fn_act(layer.activation)
        if act is None:
            raise ModelError(f"layer {layer.name!r}: activation {layer.activation} has no Darknet equivalent")
        opts = {"batch_normalize": 0, "filters": dn_kernel.shape[0], "size": k, "stride": s, "pad": 0,
                "padding": pad, "activation": act}
        if groups != 1:
            opts["groups"] = groups
        idx = self.emit("convolutional", opts, out)
        self.weights[idx] = ConvWeights(bias.astype(np.float32), np.ascontiguousarray(dn_kernel, np.float32))

    def _mergeable(self, x, what) -> int | None:
        r = self.ref.get(id(x))
        if not isinstance(r, int) or not self.single_use(x):
            return None
        kind, opts = self.sections[r]
        if kind not in what or opts.get("activation", "linear") != "linear":
            return None
        return r

    def batchnorm(self, layer, x, out):
        r = self._mergeable(x, ("convolutional",))
        if r is None or self.sections[r][1]["batch_normalize"]:
            raise ModelError(f"layer {layer.name!r}: BatchNormalization must directly follow a linear conv")
        w = self.weights[r]
        gamma, beta, mean, var = (np.asarray(v, np.float32) for v in _bn_params(layer))
        # keras: gamma * (conv + b - mean) / sqrt(var + eps) + beta ; darknet: scale * (conv - m) / (sqrt(v) + 1e-6) + bias
        std = np.sqrt(var + layer.epsilon)
        dn_var = np.square(np.maximum(std - BN_EPS, 0.0))
        self.weights[r] = ConvWeights(beta, w.kernel, gamma, mean - w.biases, dn_var.astype(np.float32))
        self.sections[r][1]["batch_normalize"] = 1
        self.ref[id(out)] = r

    def activation(self, layer, x, out, act):
        r = self._mergeable(x, ("convolutional", "shortcut"))
        if r is None:
            raise ModelError(f"layer {layer.name!r}: activation must directly follow a linear conv or Add")
        self.sections[r][1]["activation"] = act
        self.ref[id(out)] = r

    def maxpool(self, layer, x, out):
        from detector.darknet.layers import DarknetMaxPool

        self.as_previous(x, layer)
        if isinstance(layer, DarknetMaxPool):
            self.emit("maxpool", {"size": layer.size, "stride": layer.stride, "padding": layer.padding}, out)
            return
        (k, k2), (s, s2) = tuple(layer.pool_size), tuple(layer.strides)
        if k != k2 or s != s2:
            raise ModelError(f"layer {layer.name!r}: needs a square pool and stride")
        found = None
        for p in range(0, 2 * k + 1):
            ok = True
            for n in (x.shape[1], x.shape[2]):
                if layer.padding == "same":
                    k_out = -(-n // s)
                    before = max((k_out - 1) * s + k - n, 0) // 2
                else:
                    k_out, before = (n - k) // s + 1, 0
                ok &= (n + p - k) // s + 1 == k_out and p // 2 == before
            if ok:
                found = p
                break
        if found is None:
            raise ModelError(f"layer {layer.name!r}: pooling cannot be expressed with Darknet padding")
        self.emit("maxpool", {"size": k, "stride": s, "padding": found}, out)

    def emit_ready_yolos(self, decode, heads):
        """Emit [yolo] right after its head conv (Darknet style) while that keeps the decode's head order."""
        while self.yolo_done < len(heads):
            head = heads[self.yolo_done]
            r = self.ref.get(id(head))
            if not isinstance(r, int) or r != len(self.sections) - 1 or not self.single_use(head):
                return
            self.yolo_section(decode, self.yolo_done)

    def yolo_section(self, decode, k):
        all_anchors = [a for head in decode.anchors for a in head]
        flat = ",  ".join(f"{w:g},{h:g}" for w, h in all_anchors)
        start = sum(len(a) for a in decode.anchors[:k])
        mask = ",".join(str(start + j) for j in range(len(decode.anchors[k])))
        self.emit("yolo", {"mask": mask, "anchors": flat, "classes": decode.num_classes,
                           "num": len(all_anchors), "scale_x_y": f"{decode.scale_x_y[k]:g}"})
        self.yolo_done = k + 1

    def yolo(self, decode, heads):
        self.emit_ready_yolos(decode, heads)
        for k in range(self.yolo_done, len(heads)):
            self.as_previous(heads[k], decode)
            self.yolo_section(decode, k)

    def cfg_text(self) -> str:
        h, w, c = self.model.inputs[0].shape[1:]
        lines = ["[net]", "batch=1", "subdivisions=1", f"width={w}", f"height={h}", f"channels={c}", ""]
        for kind, opts in self.sections:
            lines.append(f"[{kind}]")
            lines.extend(f"{k}={v}" for k, v in opts.items())
            lines.append("")
        return "\n".join(lines)


def _bn_params(layer):
    """(gamma, beta, moving_mean, moving_variance) of a Keras BatchNormalization layer."""
    c = layer.moving_mean.shape[0]
    gamma = layer.gamma.numpy() if layer.scale else np.ones(c, np.float32)
    beta = layer.beta.numpy() if layer.center else np.zeros(c, np.float32)
    return gamma, beta, layer.moving_mean.numpy(), layer.moving_variance.numpy()


def export_model(model, cfg_path, weights_path) -> tuple[int, int]:
    """Write ``model`` as Darknet cfg + weights; returns (number of Darknet layers, weights bytes)."""
    ex = _Exporter(model)
    ex.run()
    text = ex.cfg_text()
    net = plan(parse_cfg(text))  # re-plan: validates the cfg we wrote
    Path(cfg_path).write_text(text)
    size = write_weights(weights_path, net, ex.weights)
    return len(net.layers), size
