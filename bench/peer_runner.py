"""Runs peer trackers inside bench/.venv-peers (never imported by vidtrack).

usage: python peer_runner.py JOBS.json   where JOBS.json is a list of
{"tracker": name, "det": det.txt or SEQ.npy, "out": MOT txt, "frames": n,
 optional "fps": frame rate, "images": image folder (frame i = i-th image in name order)}
Prints one JSON line per job: {"out": ..., "seconds": tracker update time}.
Trackers: sort, bytetrack, ocsort, botsort (Roboflow trackers 2.6.1, defaults; ``fps`` is
passed as their frame_rate; BoT-SORT with its camera-motion compensation, sparse optical flow
on the frames, when the job has ``images``, without CMC otherwise), deepsort
(deep-sort-realtime, embedder off, embeddings from the .npy), norfair (IoU). Rows of
untracked detections (id -1) are dropped.
"""
import json
import os
import sys
import time
import warnings

import cv2
import numpy as np

warnings.filterwarnings("ignore")


def load(det_path):
    if det_path.endswith(".npy"):
        a = np.load(det_path)
        rows, feats = a[:, :10], a[:, 10:]
    else:
        rows = np.loadtxt(det_path, delimiter=",", ndmin=2)
        feats = None
    out = {}
    for f in np.unique(rows[:, 0].astype(int)):
        sel = rows[:, 0].astype(int) == f
        r = rows[sel]
        boxes = np.stack([r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]], 1)
        out[int(f)] = (boxes, r[:, 6], None if feats is None else feats[sel])
    return out


def make(name, fps=None, cmc=False):
    if name in ("sort", "bytetrack", "ocsort", "botsort"):
        import supervision as sv
        import trackers

        cls = {"sort": trackers.SORTTracker, "bytetrack": trackers.ByteTrackTracker,
               "ocsort": trackers.OCSORTTracker, "botsort": trackers.BoTSORTTracker}[name]
        kw = {} if fps is None else {"frame_rate": float(fps)}
        tr = cls(enable_cmc=cmc, **kw) if name == "botsort" else cls(**kw)

        def step(boxes, scores, feats, image=None):
            d = sv.Detections(xyxy=boxes.astype(np.float32).reshape(-1, 4), confidence=scores.astype(np.float32),
                              class_id=np.zeros(len(boxes), int))
            r = tr.update(d, frame=image) if cmc else tr.update(d)
            keep = r.tracker_id >= 0
            return [(int(i), *map(float, b), float(s)) for i, b, s in
                    zip(r.tracker_id[keep], r.xyxy[keep],
                        r.confidence[keep] if r.confidence is not None else np.ones(keep.sum()))]
        return step
    if name == "deepsort":
        from deep_sort_realtime.deepsort_tracker import DeepSort

        tr = DeepSort(embedder=None, max_age=30, n_init=3, max_cosine_distance=0.2, nn_budget=100)

        def step(boxes, scores, feats, image=None):
            raw = [([b[0], b[1], b[2] - b[0], b[3] - b[1]], float(s), "0") for b, s in zip(boxes, scores)]
            emb = [f / np.linalg.norm(f) for f in feats] if feats is not None else []
            tracks = tr.update_tracks(raw, embeds=emb)
            return [(int(t.track_id), *map(float, t.to_ltrb()), float(t.det_conf or 0)) for t in tracks
                    if t.is_confirmed() and t.time_since_update == 0]
        return step
    if name == "norfair":
        from norfair import Detection, Tracker

        tr = Tracker(distance_function="iou", distance_threshold=0.7)

        def step(boxes, scores, feats, image=None):
            dets = [Detection(points=b.reshape(2, 2), scores=np.array([s, s])) for b, s in zip(boxes, scores)]
            objs = tr.update(detections=dets)
            return [(int(o.id), *map(float, o.estimate.reshape(-1)), 1.0) for o in objs]
        return step
    raise SystemExit(f"unknown tracker {name}")


def main():
    jobs = json.load(open(sys.argv[1]))
    for job in jobs:
        frames = load(job["det"])
        images = job.get("images") if job["tracker"] == "botsort" else None
        step = make(job["tracker"], job.get("fps"), cmc=images is not None)
        files = sorted(os.path.join(images, n) for n in os.listdir(images)
                       if n.lower().endswith((".jpg", ".jpeg", ".png"))) if images else []
        empty = (np.zeros((0, 4)), np.zeros(0), None)
        lines, spent = [], 0.0
        for f in range(1, job["frames"] + 1):
            b, s, e = frames.get(f, empty)
            if e is None and job["tracker"] == "deepsort":
                e = np.zeros((len(b), 0))
            img = cv2.imread(files[f - 1]) if files else None
            t0 = time.perf_counter()
            res = step(b, s, e, img)
            spent += time.perf_counter() - t0
            for tid, x1, y1, x2, y2, sc in res:
                lines.append(f"{f},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{sc:.4f},-1,-1,-1")
        with open(job["out"], "w") as fh:
            fh.write("\n".join(lines) + "\n")
        print(json.dumps({"out": job["out"], "seconds": spent}), flush=True)


if __name__ == "__main__":
    main()
