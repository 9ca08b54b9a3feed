"""Would Winograd convolutions built from TensorFlow ops beat TensorFlow's own convolution?

OpenCV's DNN runs 3x3 stride-1 convolutions with Winograd F(6x6, 3x3) (fewer multiplies),
which is why yolov4-tiny at batch 8 stays at ~1.3x OpenCV in bench/detector.py while the
direct convolutions already run close to this CPU's FMA peak. This probe times, for every
3x3 stride-1 convolution of a Darknet cfg (default yolov4-tiny at 416x416, batch 8, 2 threads
as in bench/detector.py):

- ``direct``: ``tf.nn.conv2d`` + bias + leaky (what the frozen detector graph runs, oneDNN);
- ``F(m,3)``: Winograd F(m x m, 3 x 3), m = 2 and 4: input and output transforms as
  TensorFlow ops compiled with XLA (so they fuse), the tile products as one batched matmul
  (oneDNN) per layer;
- ``matmul``: that batched matmul alone, the floor of the Winograd path;

and prints milliseconds per layer call, the max abs difference from ``direct`` and the sum
over the network weighted by how often each shape occurs. Nothing here is used by vidtrack;
it records why the detector does not use Winograd.

    .venv/bin/python bench/winograd_probe.py [--cfg PATH] [--batch 8] [--threads 2] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

DEFAULT_CFG = REPO.parent / "shared" / "data" / "darknet" / "yolov4-tiny.cfg"


def winograd_matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B^T, G, A^T) of F(m x m, 3 x 3) (Lavin & Gray 2016) for m = 2 or 4."""
    if m == 2:
        bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        g = [[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]
        at = [[1, 1, 1, 0], [0, 1, -1, -1]]
    elif m == 4:
        bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
             [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    else:
        raise ValueError(m)
    return np.array(bt, np.float64), np.array(g, np.float64), np.array(at, np.float64)


def _combine(parts, coeffs):
    """sum_j coeffs[j] * parts[j] with the zero terms left out."""
    out = None
    for c, p in zip(coeffs, parts):
        if c == 0:
            continue
        t = p if c == 1 else (-p if c == -1 else p * np.float32(c))
        out = t if out is None else out + t
    return out


def kernel_transform(kernel: np.ndarray, m: int) -> np.ndarray:
    """float32[3, 3, C, K] -> float32[(m+2)^2, C, K], U = G k G^T per (C, K)."""
    _, g, _ = winograd_matrices(m)
    a = m + 2
    u = np.einsum("ai,ijck,bj->abck", g, kernel.astype(np.float64), g)
    return u.reshape(a * a, *kernel.shape[2:]).astype(np.float32)


def input_transform(x, m: int, h: int, w: int):
    """float32[N, h, w, C] -> V float32[(m+2)^2, N * tiles, C] ('same' padding)."""
    import tensorflow as tf

    bt, _, _ = winograd_matrices(m)
    a = m + 2
    th, tw = -(-h // m), -(-w // m)
    xp = tf.pad(x, [[0, 0], [1, th * m + 1 - h], [1, tw * m + 1 - w], [0, 0]])
    rows = [xp[:, i:i + (th - 1) * m + 1:m] for i in range(a)]
    rows = [_combine(rows, bt[p]) for p in range(a)]
    tiles = []
    for p in range(a):
        cols = [rows[p][:, :, j:j + (tw - 1) * m + 1:m] for j in range(a)]
        tiles += [_combine(cols, bt[q]) for q in range(a)]
    return tf.reshape(tf.stack(tiles), [a * a, -1, x.shape[-1]])


def output_transform(mm, m: int, h: int, w: int, bias: float):
    """M float32[(m+2)^2, N * tiles, K] -> leaky(conv + bias) float32[N, h, w, K]."""
    import tensorflow as tf

    _, _, at = winograd_matrices(m)
    a = m + 2
    th, tw = -(-h // m), -(-w // m)
    k = mm.shape[-1]
    mm = tf.reshape(mm, [a, a, -1, k])
    rows = [_combine([mm[p] for p in range(a)], at[i]) for i in range(m)]
    y = tf.stack([tf.stack([_combine([rows[i][q] for q in range(a)], at[j]) for j in range(m)]) for i in range(m)])
    y = tf.transpose(tf.reshape(y, [m, m, -1, th, tw, k]), [2, 3, 0, 4, 1, 5])
    y = tf.reshape(y, [-1, th * m, tw * m, k])[:, :h, :w]
    return tf.nn.leaky_relu(y + bias, 0.1)


def conv_shapes(cfg: Path) -> Counter:
    """Counter of (height, width, in_channels, filters) of the cfg's 3x3 stride-1 convolutions."""
    from detector.darknet.cfg import plan_file

    shapes = Counter()
    for layer in plan_file(cfg).layers:
        p = layer.params
        if layer.type == "convolutional" and p["size"] == 3 and p["stride"] == 1 and p["groups"] == 1:
            shapes[(layer.shape[0], layer.shape[1], p["in_channels"], p["filters"])] += 1
    return shapes


def time_calls(fns: dict, x, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved round-robin."""
    for f in fns.values():
        f(x)
    times = {n: [] for n in fns}
    for _ in range(repeats):
        for n, f in fns.items():
            t0 = time.perf_counter()
            np.asarray(f(x))
            times[n].append(time.perf_counter() - t0)
    return {n: float(np.median(t)) for n, t in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cfg", type=Path, default=DEFAULT_CFG)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if not args.cfg.is_file():
        print(f"skip: {args.cfg} not found (../shared/data/darknet holds the Darknet cfgs)")
        return 0
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    shapes = conv_shapes(args.cfg)
    names = ["direct", "F(2,3)", "F(4,3)", "matmul F(2,3)", "matmul F(4,3)"]
    print(f"{args.cfg.name}: 3x3 stride-1 convolutions, batch {args.batch}, {args.threads} threads, "
          f"median of {args.repeats}; ms per call (max abs difference from direct)")
    print(f"{'H x W  C -> K':<22}{'n':>3}" + "".join(f"{n:>16}" for n in names))
    total = Counter()
    for (h, w, c, k), count in sorted(shapes.items()):
        x = tf.constant(rng.normal(size=(args.batch, h, w, c)).astype(np.float32))
        kernel = (rng.normal(size=(3, 3, c, k)) / np.sqrt(9 * c)).astype(np.float32)
        kc = tf.constant(kernel)
        fns = {"direct": tf.function(lambda x, kc=kc: tf.nn.leaky_relu(tf.nn.conv2d(x, kc, 1, "SAME") + 0.1, 0.1))}
        for m in (2, 4):
            u = tf.constant(kernel_transform(kernel, m))
            fin = tf.function(jit_compile=True)(lambda x, m=m, h=h, w=w: input_transform(x, m, h, w))
            fout = tf.function(jit_compile=True)(lambda y, m=m, h=h, w=w: output_transform(y, m, h, w, 0.1))
            fns[f"F({m},3)"] = tf.function(lambda x, u=u, fin=fin, fout=fout: fout(tf.matmul(fin(x), u)))
            v = fin(x)
            fns[f"matmul F({m},3)"] = tf.function(lambda x, v=v, u=u: tf.matmul(v, u))
        secs = time_calls(fns, x, args.repeats)
        ref = fns["direct"](x).numpy()
        cells = []
        for n in names:
            err = "" if n.startswith("matmul") or n == "direct" else \
                f" ({np.abs(fns[n](x).numpy() - ref).max():.0e})"
            cells.append(f"{1000 * secs[n]:.1f}{err}")
            total[n] += count * secs[n]
        print(f"{f'{h}x{w} {c}->{k}':<22}{count:>3}" + "".join(f"{c:>16}" for c in cells))
    print(f"{'network (sum)':<25}" + "".join(f"{1000 * total[n]:>16.1f}" for n in names))
    print(f"{'ratio direct / this':<25}" + "".join(f"{total['direct'] / total[n]:>16.2f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
