"""Tracking metrics on MOTChallenge files with TrackEval's HOTA, CLEAR and Identity metrics.

Data preparation follows TrackEval's MOT15 handling: gt rows with conf 0 are ignored, ids
are remapped to 0..n-1 per sequence, similarity is box IoU; frames 1..max(frame) of gt and
result. Returns plain floats: HOTA, DetA, AssA (alpha-averaged), MOTA, MOTP, IDF1, IDSW, MT,
ML, FP, FN, plus counts.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from base.geometry import iou_matrix, xywh_to_xyxy
from base.mot import read_mot


def prepare_sequence(gt: np.ndarray, res: np.ndarray) -> dict:
    """TrackEval's per-sequence data dict from gt and result rows (float[N,10])."""
    gt = gt[gt[:, 6] != 0]
    n_frames = int(max(gt[:, 0].max(initial=0), res[:, 0].max(initial=0)))
    gt_uid, gt_ids = np.unique(gt[:, 1], return_inverse=True)
    tr_uid, tr_ids = np.unique(res[:, 1], return_inverse=True)
    data = {"gt_ids": [], "tracker_ids": [], "similarity_scores": [],
            "num_timesteps": n_frames, "num_gt_ids": len(gt_uid), "num_tracker_ids": len(tr_uid),
            "num_gt_dets": len(gt), "num_tracker_dets": len(res)}
    for f in range(1, n_frames + 1):
        g, r = gt[:, 0] == f, res[:, 0] == f
        data["gt_ids"].append(gt_ids[g].astype(int))
        data["tracker_ids"].append(tr_ids[r].astype(int))
        data["similarity_scores"].append(iou_matrix(xywh_to_xyxy(gt[g, 2:6]), xywh_to_xyxy(res[r, 2:6])))
    return data


def evaluate_rows(gt: np.ndarray, res: np.ndarray) -> dict[str, float]:
    """Metrics for one sequence given gt and result rows (float[N,10] MOT columns)."""
    from trackeval.metrics import CLEAR, HOTA, Identity

    data = prepare_sequence(gt, res)
    cfg = {"PRINT_CONFIG": False, "THRESHOLD": 0.5}
    hota = HOTA().eval_sequence(data)
    clear = CLEAR(cfg).eval_sequence(data)
    ident = Identity(cfg).eval_sequence(data)
    return {
        "HOTA": float(np.mean(hota["HOTA"])),
        "DetA": float(np.mean(hota["DetA"])),
        "AssA": float(np.mean(hota["AssA"])),
        "MOTA": float(clear["MOTA"]),
        "MOTP": float(clear["MOTP"]),
        "IDF1": float(ident["IDF1"]),
        "IDSW": int(clear["IDSW"]),
        "MT": int(clear["MT"]),
        "ML": int(clear["ML"]),
        "FP": int(clear["CLR_FP"]),
        "FN": int(clear["CLR_FN"]),
        "TP": int(clear["CLR_TP"]),
        "GT_dets": int(data["num_gt_dets"]),
        "GT_ids": int(data["num_gt_ids"]),
    }


def evaluate_mot(gt_path: str | Path, result_path: str | Path) -> dict[str, float]:
    """HOTA, MOTA, IDF1, IDSW, DetA, AssA, MT, ML, FP, FN ... of a MOT result against gt."""
    return evaluate_rows(read_mot(gt_path), read_mot(result_path))
