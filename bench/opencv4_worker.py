"""Runs inside the OpenCV 4.x venv (no vidtrack imports). Usage: python opencv4_worker.py JOB.json

Job: {"cfg", "weights", "task": "forward" | "detect" | "time", "in": IN.npz, "out": OUT.npz, ...}

- forward: input ``blob`` float32[B,3,H,W] -> ``head{k}`` raw conv outputs before each yolo
  layer (NCHW) and ``yolo{k}`` OpenCV yolo-layer outputs.
- detect:  input ``blob`` -> per image ``boxes{b}`` float32[K,4] x1y1x2y2 input px, ``scores{b}``,
  ``classes{b}`` after OpenCV's yolo layer, score threshold and NMSBoxesBatched.
- time:    input ``blob`` -> ``seconds`` float64[repeats] per forward pass.
"""
import json
import sys
import time

import cv2
import numpy as np


def _net(job):
    net = cv2.dnn.readNetFromDarknet(job["cfg"], job["weights"])
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    if "winograd" in job and hasattr(net, "enableWinograd"):
        net.enableWinograd(bool(job["winograd"]))
    return net


def main(path):
    job = json.load(open(path))
    if job.get("threads"):
        cv2.setNumThreads(int(job["threads"]))
    net = _net(job)
    blob = np.load(job["in"])["blob"]
    yolo_names = list(net.getUnconnectedOutLayersNames())
    out = {"version": np.array(cv2.__version__)}
    if job["task"] == "forward":
        heads = ["conv_%d" % i for i in job["head_layers"]]
        net.setInput(blob)
        res = net.forward(heads + yolo_names)
        for k, name in enumerate(heads):
            out["head%d" % k] = res[k]
        for k, name in enumerate(yolo_names):
            out["yolo%d" % k] = res[len(heads) + k]
    elif job["task"] == "detect":
        conf, iou = float(job["conf"]), float(job["iou"])
        h, w = blob.shape[2:]
        net.setInput(blob)
        res = net.forward(yolo_names)
        b = blob.shape[0]
        rows = [r.reshape(b, -1, r.shape[-1]) for r in res]
        rows = np.concatenate(rows, axis=1)
        for i in range(b):
            r = rows[i]
            scores = r[:, 5:]
            ri, ci = np.nonzero(scores > conf)
            cx, cy, bw, bh = r[ri, 0] * w, r[ri, 1] * h, r[ri, 2] * w, r[ri, 3] * h
            xywh = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], 1).astype(np.float64)
            s = scores[ri, ci].astype(np.float32)
            keep = np.asarray(cv2.dnn.NMSBoxesBatched(xywh.tolist(), s.tolist(), ci.tolist(), conf, iou),
                              np.int64).reshape(-1) if len(s) else np.zeros(0, np.int64)
            keep = keep[np.argsort(-s[keep], kind="stable")]
            x = xywh[keep]
            out["boxes%d" % i] = np.stack([x[:, 0], x[:, 1], x[:, 0] + x[:, 2], x[:, 1] + x[:, 3]], 1).astype(np.float32)
            out["scores%d" % i] = s[keep]
            out["classes%d" % i] = ci[keep].astype(np.int32)
    elif job["task"] == "time":
        net.setInput(blob)
        for _ in range(int(job.get("warmup", 3))):
            net.forward(yolo_names)
        times = []
        for _ in range(int(job.get("repeats", 10))):
            t0 = time.perf_counter()
            net.setInput(blob)
            net.forward(yolo_names)
            times.append(time.perf_counter() - t0)
        out["seconds"] = np.array(times)
    else:
        raise SystemExit("unknown task %r" % job["task"])
    np.savez(job["out"], **out)


if __name__ == "__main__":
    main(sys.argv[1])
