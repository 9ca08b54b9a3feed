"""Tracker benchmark: vidtrack vs peer trackers on the same detections of a pool of real
and generated sequences, leave-one-sequence-out choice of vidtrack's defaults, update speed.

    .venv/bin/python bench/tracker.py [--skip-peers] [--skip-speed] [--skip-ablation]
        [--only-selection] [--pool SUBSTR ...] [--jobs N] [--legacy [--skip-synthetic]]

Pool (bench/sequences.py, cached once under bench/.cache/pool/): TUD-Campus, TUD-Stadtmitte,
KITTI-17 with FRCNN detections and with Yolo-Fastest 1.1 body detections (OpenCV 4 DNN, score
>= 0.1); generated default scenes (seeds 11-13) and ``SceneConfig.hard`` scenes (seeds 21, 22 at
30 fps, 23 at 7.5 fps) with noisy detections from gt; every sequence with its frames and the
shipped embedder's vectors of every box (det.npy).

vidtrack runs as ``vidtrack track-detections`` does (backfill on, no interpolation): "motion"
on det.txt, "frames" on det.npy (what ``--frames img1`` computes). Every candidate of
bench/selection.py's grid runs in both modes; the leave-one-out selection prints the in-sample
and the held-out tables per mode. Peers (Roboflow trackers 2.6.1: SORT, ByteTrack, OC-SORT,
BoT-SORT with its camera-motion compensation on the frames; deep-sort-realtime on the same
det.npy embeddings; norfair), each with its defaults and the sequence's frame rate, id -1
rows dropped, run in their own venv (bench/.venv-peers, created once) through
bench/peer_runner.py, in the background while vidtrack runs. The per-sequence table has HOTA /
IDF1 / MOTA / IDSW / AssA of the vidtrack defaults, the held-out choices, and the peers.

``--legacy`` adds the older tables on the MOT15 inputs: A (FRCNN dets), B (public ACF dets +
DeepSORT features), D (A after offline gap interpolation), the ablation, C / C' (generated
scenes seeds 1-2) and the held-out seeds 3-10. Scores: TrackEval via vidtrack.evaluation.
Speed: tracker update calls per second (only the update call is timed), 50 objects, vidtrack
and every peer on the same stream in the same run, with the ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from base.types import Detections  # noqa: E402
from tracker import Tracker, TrackerConfig  # noqa: E402
from workers.offline import track_sequence  # noqa: E402
from vidtrack.evaluation import evaluate_mot  # noqa: E402
from tracker.interpolation import interpolate_gaps  # noqa: E402
from base.mot import read_detections, read_feature_detections, read_mot, read_seqinfo, write_mot  # noqa: E402
from bench.selection import coordinate_grid, leave_one_out, objective, print_selection, split_options  # noqa: E402
from bench.sequences import build_pool  # noqa: E402

DATA = Path(os.environ.get("VIDTRACK_SHARED_DATA", ROOT.parent / "shared" / "data")) / "mot"
SEQS = ["TUD-Campus", "TUD-Stadtmitte", "KITTI-17"]
PEER_VENV = ROOT / "bench" / ".venv-peers"
PEER_PY = PEER_VENV / "bin" / "python"
MOTION_PEERS = ["sort", "bytetrack", "ocsort", "botsort", "norfair"]

# The appearance input uses the same defaults (ACF scores are not probabilities, but
# nearly all are above the 0.7 split; fuse_score clips scores to 0..1).
APPEARANCE: dict = {}
# Tables D and C': the offline gap filling of `vidtrack track-detections --interpolate`, for
# every tracker (it needs the future, so tables A-C are online).
INTERPOLATE_GAP = 20


def seq_len(seq: str) -> int:
    return int(read_seqinfo(DATA / seq / "seqinfo.ini")["seqLength"])


def seq_fps(seq: str) -> float:
    """The sequence's frame rate (seqinfo.ini): the tracker counts its seconds in it (KITTI-17: 10)."""
    return float(read_seqinfo(DATA / seq / "seqinfo.ini")["frameRate"])


def ensure_peer_venv() -> None:
    """Create bench/.venv-peers once (trackers 2.6.1, deep-sort-realtime, norfair)."""
    if PEER_PY.exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(PEER_PY), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["trackers==2.6.1", "deep-sort-realtime"], check=True)
    # norfair pins numpy<2 / rich<15 but runs with the versions trackers needs
    subprocess.run(pip + ["--no-deps", "norfair"], check=True)
    subprocess.run(pip + ["filterpy"], check=True)


def run_peers(jobs: list[dict]) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(jobs, fh)
    proc = subprocess.run([str(PEER_PY), str(ROOT / "bench" / "peer_runner.py"), fh.name],
                          capture_output=True, text=True, check=True)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["out"]: r["seconds"] for r in results}


def run_vidtrack(frames, n, cfg, out, backfill=True, fps=25.0) -> float:
    """Track a sequence of ``fps`` frames/s and write ``out``; also write what
    ``track-detections --interpolate`` gives (gaps between matched rows filled, before
    coasting) to :func:`interp_path` ``(out)``."""
    rows, spent = track_sequence(frames, cfg, n, backfill=backfill, frame_rate=fps)
    write_mot(out, rows)
    rows, _ = track_sequence(frames, cfg, n, backfill=backfill, interpolate=INTERPOLATE_GAP, frame_rate=fps)
    write_mot(interp_path(out), rows)
    return spent


def interp_path(out: Path) -> Path:
    return out.with_name(out.stem + f".interp{INTERPOLATE_GAP}.txt")


def score(seq: str, out: Path, seconds: float) -> dict:
    m = evaluate_mot(DATA / seq / "gt" / "gt.txt", out)
    m["ups"] = seq_len(seq) / max(seconds, 1e-9)
    m["out"] = out
    return m


def interpolated(out: Path) -> Path:
    """A peer's MOT txt with vidtrack's offline gap interpolation applied to its rows."""
    a = read_mot(out)
    rows = [(f, i, x, y, x + w, y + h, s) for f, i, x, y, w, h, s in a[:, :7]]
    dst = interp_path(out)
    write_mot(dst, interpolate_gaps(rows, INTERPOLATE_GAP))
    return dst


def interpolated_table(results: dict[str, dict[str, dict]], gt_of, seqs) -> dict[str, dict[str, dict]]:
    """Re-score every tracker after gap interpolation: a peer's output rows interpolated,
    vidtrack's ``track-detections --interpolate`` output (its gaps are measured between
    matched rows, so its coasted rows do not widen them). Update rates are those of the
    runs without interpolation."""
    table = {}
    for name, per in results.items():
        table[name] = {}
        for s in seqs:
            done = interp_path(per[s]["out"])
            m = evaluate_mot(gt_of(s), done if per[s].get("vidtrack") else interpolated(per[s]["out"]))
            m["ups"] = per[s]["ups"]
            table[name][s] = m
    return table


def print_table(title: str, results: dict[str, dict[str, dict]], seqs: list[str] = SEQS, mean: bool = True) -> None:
    """One row per tracker: HOTA / MOTA / IDF1 / IDsw / updates per second on each sequence,
    and (``mean``) the mean HOTA / IDF1 over them."""
    print(f"\n## {title}")
    print(f"{'tracker':<30}" + "".join(f"{s:>32}" for s in seqs) + (f"{'mean HOTA/IDF1':>16}" if mean else ""))
    print(f"{'':<30}" + "".join(f"{'HOTA  MOTA  IDF1 IDsw   upd/s':>32}" for _ in seqs))
    for name, per in results.items():
        cells = "".join(f"{per[s]['HOTA']:>8.3f}{per[s]['MOTA']:>6.3f}{per[s]['IDF1']:>6.3f}"
                        f"{per[s]['IDSW']:>5d}{per[s]['ups']:>7.0f}"
                        for s in seqs)
        if mean:
            cells += f"{np.mean([per[s]['HOTA'] for s in seqs]):>9.3f}/{np.mean([per[s]['IDF1'] for s in seqs]):.3f}"
        print(f"{name:<30}{cells}")


def vidtrack_rows(tmp: Path, variants: dict[str, dict], appearance: bool) -> dict[str, dict]:
    res = {}
    for name, over in variants.items():
        over = dict(over)
        backfill = over.pop("backfill", True)
        res[name] = {}
        for seq in SEQS:
            if appearance:
                frames = read_feature_detections(DATA / "deepsort-features" / f"{seq}.npy")
            else:
                frames = read_detections(DATA / "sort-frcnn-det" / seq / "det.txt")
            out = tmp / f"vt-{'app' if appearance else 'motion'}-{name}-{seq}.txt".replace(" ", "_")
            spent = run_vidtrack(frames, seq_len(seq), TrackerConfig(**over), out, backfill, seq_fps(seq))
            res[name][seq] = score(seq, out, spent)
            res[name][seq]["vidtrack"] = True
    return res


def accuracy(args, tmp: Path) -> None:
    motion = {"vidtrack (default)": {}}
    app = {"vidtrack (default)": dict(APPEARANCE)}
    results = vidtrack_rows(tmp, motion, appearance=False)
    results_app = vidtrack_rows(tmp, app, appearance=True)
    if not args.skip_peers:
        ensure_peer_venv()
        jobs = [{"tracker": p, "det": str(DATA / "sort-frcnn-det" / s / "det.txt"), "out": str(tmp / f"{p}-{s}.txt"),
                 "frames": seq_len(s)} for p in MOTION_PEERS for s in SEQS]
        jobs += [{"tracker": "deepsort", "det": str(DATA / "deepsort-features" / f"{s}.npy"),
                  "out": str(tmp / f"dsr-{s}.txt"), "frames": seq_len(s)} for s in SEQS]
        secs = run_peers(jobs)
        for p in MOTION_PEERS:
            results[p] = {s: score(s, tmp / f"{p}-{s}.txt", secs[str(tmp / f"{p}-{s}.txt")]) for s in SEQS}
        results_app["deep-sort-realtime"] = {s: score(s, tmp / f"dsr-{s}.txt", secs[str(tmp / f"dsr-{s}.txt")])
                                             for s in SEQS}
    print_table("A. FRCNN detections (sort-frcnn-det), motion only", results)
    print_table("B. public ACF detections + DeepSORT features (appearance)", results_app)
    print_table(f"D. table A after offline gap interpolation (<= {INTERPOLATE_GAP} frames) for every tracker; upd/s of A",
                interpolated_table(results, lambda s: DATA / s / "gt" / "gt.txt", SEQS))


def ablation(tmp: Path) -> None:
    d = TrackerConfig()
    variants = {
        "default": {},
        "-low round": {"low_score_threshold": d.high_score_threshold},
        "-score split (all high)": {"high_score_threshold": 0.0, "low_score_threshold": 0.0},
        "-fuse_score": {"fuse_score": False},
        "+ORU (OC-SORT)": {"oru": True},
        "+OCR": {"observation_recovery": True},
        "+IoU gating": {"iou_gating": True},
        "+OCM 0.2 (OC-SORT)": {"direction_weight": 0.2},
        "+OCM 0.1": {"direction_weight": 0.1},
        "max_iou_distance=0.7": {"max_iou_distance": 0.7},
        "init_s=0.08 (2 fr. at 25 fps)": {"init_s": 0.08},
        "max_age_s=2.4": {"max_age_s": 2.4},
        "-backfill": {"backfill": False},
        "coast_s=0 (matched only)": {"coast_s": 0.0},
        "coast_s=0.04 (1 fr. at 25 fps)": {"coast_s": 0.04},
        "filterpy kalman": {"kalman": "filterpy"},
        "DeepSORT aspect noise": {"aspect_process_std": 0.05, "aspect_measurement_std": 0.1},
    }
    print_table("ablation, motion (FRCNN dets): one switch changed from the default", vidtrack_rows(tmp, variants, False))
    variants = {
        "default": {},
        "-appearance": {"appearance": False},
        "association=cascade (DeepSORT)": {"association": "cascade"},
        "cascade -occlusion check": {"association": "cascade", "appearance_occlusion_iou": 1.0},
        "-occlusion check": {"appearance_occlusion_iou": 1.0},
        "cascade, one assignment": {"association": "cascade", "matching_cascade": False},
        "-EMA (gallery 100)": {"embedding_ema": None},
        "max_cos=0.2": {"max_cosine_distance": 0.2},
        "-gating": {"gating": False},
        "+ORU (OC-SORT)": {"oru": True},
        "+OCM 0.2 (OC-SORT)": {"direction_weight": 0.2},
        "secondary_iou=0.8": {"secondary_iou_distance": 0.8},
        "-backfill": {"backfill": False},
        "coast_s=0 (matched only)": {"coast_s": 0.0},
        # no aspect-noise row here: every ACF box has the same aspect ratio, so it changes nothing
        "DeepSORT-like": {"association": "cascade", "matching_cascade": True, "embedding_ema": None, "max_cosine_distance": 0.2,
                          "oru": False, "fuse_score": False, "high_score_threshold": 0.0,
                          "low_score_threshold": 0.0, "backfill": False, "coast_s": 0.0,
                          "aspect_process_std": 0.05, "aspect_measurement_std": 0.1},
    }
    print_table("ablation, appearance (ACF dets + DeepSORT features)", vidtrack_rows(tmp, variants, True))


def synthetic_stream(n_obj: int, n_frames: int, dim: int, seed: int = 0) -> list[Detections]:
    """n_obj boxes drifting at constant velocity with noise, a few missed per frame."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform([0, 0], [1800, 1000], (n_obj, 2))
    vel = rng.normal(0, 2, (n_obj, 2))
    size = rng.uniform([20, 50], [50, 120], (n_obj, 2))
    emb = rng.normal(size=(n_obj, dim))
    frames = []
    for _ in range(n_frames):
        pos += vel
        keep = rng.random(n_obj) > 0.05
        p = pos[keep] + rng.normal(0, 1, (keep.sum(), 2))
        boxes = np.concatenate([p, p + size[keep]], 1)
        e = emb[keep] + rng.normal(0, 0.1, (keep.sum(), dim)) if dim else np.zeros((keep.sum(), 0))
        if dim:
            e /= np.linalg.norm(e, axis=1, keepdims=True)
        frames.append(Detections(boxes, rng.uniform(0.6, 1, keep.sum()), np.zeros(keep.sum()), e))
    return frames


def _time_updates(frames, cfg) -> tuple[float, float]:
    """(frames per wall second, frames per CPU second of this process) over one run."""
    t = Tracker(cfg)
    w0, c0 = time.perf_counter(), time.process_time()
    for i, d in enumerate(frames):
        t.update(d, i)
    return len(frames) / (time.perf_counter() - w0), len(frames) / max(time.process_time() - c0, 1e-9)


def speed(peers: bool = True) -> None:
    """Update rate with 50 objects: the best of 5 runs, wall clock and CPU time (the box is
    shared, so CPU-time rates are the steadier number; both come from the same runs). With
    ``peers``, every peer tracker runs the same stream in the same run (bench/peer_runner.py;
    the 128-d embeddings go to deep-sort-realtime) and the ratios are vidtrack's over theirs."""
    print(f"\n## speed: 50 objects, 300 frames, tracker.update calls per second (best of 5); load {os.getloadavg()[0]:.1f}")
    print(f"{'update':<26}{'kalman':>10}{'wall f/s':>10}{'cpu f/s':>10}")
    ours = {}
    for label, dim in (("motion-only", 0), ("full (128-d embeddings)", 128)):
        frames = synthetic_stream(50, 300, dim)
        best = {}
        for kalman in ("batched", "filterpy"):
            runs = [_time_updates(frames, TrackerConfig(kalman=kalman)) for _ in range(5)]
            best[kalman] = (max(r[0] for r in runs), max(r[1] for r in runs))
            print(f"{label:<26}{kalman:>10}{best[kalman][0]:>10.0f}{best[kalman][1]:>10.0f}")
        print(f"{'':<26}{'ratio':>10}{best['batched'][0] / best['filterpy'][0]:>10.2f}"
              f"{best['batched'][1] / best['filterpy'][1]:>10.2f}")
        runs = [_time_updates(frames, TrackerConfig(oru=True)) for _ in range(5)]
        print(f"{label + ' +ORU':<26}{'batched':>10}{max(r[0] for r in runs):>10.0f}{max(r[1] for r in runs):>10.0f}")
        ours[dim] = best["batched"][0]
    if peers:
        peer_speed(synthetic_stream(50, 300, 128), ours[0], ours[128])


def peer_speed(frames: list[Detections], motion_fps: float, full_fps: float) -> None:
    """Each peer's update rate on ``frames`` (the speed stream, with its embeddings), timed
    around each peer's own update call and its input / output conversion (bench/peer_runner.py,
    best of 3 runs), and vidtrack's wall rates over it: motion-only against the motion peers,
    full (embeddings) against deep-sort-realtime, which takes the same embeddings."""
    ensure_peer_venv()
    with tempfile.TemporaryDirectory() as tmp:
        det = Path(tmp) / "speed.npy"
        np.save(det, np.concatenate([_det_rows(i, d) for i, d in enumerate(frames, 1)]))
        jobs = [{"tracker": t, "det": str(det), "out": str(Path(tmp) / f"{t}-{k}.txt"), "frames": len(frames)}
                for t in POOL_PEERS for k in range(3)]
        seconds = run_peers(jobs)
    print(f"\n{'peer (same stream)':<26}{'wall f/s':>10}{'vidtrack / peer':>18}")
    for t in POOL_PEERS:
        fps = len(frames) / min(seconds[j["out"]] for j in jobs if j["tracker"] == t)
        ours, what = (full_fps, "full") if t == "deepsort" else (motion_fps, "motion-only")
        print(f"{t:<26}{fps:>10.0f}{ours / fps:>12.2f} ({what})")


def _det_rows(frame: int, d: Detections) -> np.ndarray:
    """MOT det rows float[N, 10 + D] of one frame with its embeddings appended (det.npy's layout)."""
    b, n = d.boxes, len(d)
    return np.column_stack([np.full(n, frame), -np.ones(n), b[:, :2], b[:, 2:] - b[:, :2], d.scores,
                            -np.ones((n, 3)), d.embeddings])


def make_synthetic(tmp: Path, seed: int, n_frames: int = 250) -> tuple[Path, Path, Path]:
    """A generated scene (vidtrack.synthetic: people, cars, balls crossing and occluding)
    turned into detections: every gt box seen at >= 20 % visibility, kept with p = 0.9,
    jittered by 3 % of its size, score 0.35 + 0.6 * visibility (+-0.05, so occluded objects
    score low), plus ~0.5 false positives / frame at scores 0.1..0.5; embedding = a fixed
    random 128-d vector per identity + noise (same-id cosine ~0.7). Writes gt.txt (rows
    below 20 % visibility are ignored: conf 0), det.txt and the DeepSORT-style .npy."""
    from vidtrack.synthetic import SceneConfig, _Scene

    rng = np.random.default_rng(seed)
    scene = _Scene(SceneConfig(seed=seed, num_frames=n_frames, max_objects=10))
    gt_lines, det_rows, ident = [], [], {}
    for i in range(n_frames):
        _, gt = scene.render(i)
        scene._move()
        f = i + 1
        for tid, _cls, x1, y1, x2, y2, vis in gt:
            gt_lines.append(f"{f},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{int(vis >= 0.2)},-1,-1,-1")
            if vis < 0.2 or rng.random() > 0.9:
                continue
            w, h = x2 - x1, y2 - y1
            bx = np.array([x1, y1, w, h]) + rng.normal(0, 0.03, 4) * [w, h, w, h]
            score = float(np.clip(0.35 + 0.6 * vis + rng.normal(0, 0.05), 0.05, 1.0))
            if tid not in ident:
                ident[tid] = rng.normal(size=128) / np.sqrt(128)
            emb = ident[tid] + rng.normal(size=128) / np.sqrt(128) * 0.65
            det_rows.append(np.concatenate([[f, -1, *bx, score, -1, -1, -1], emb]))
        for _ in range(rng.poisson(0.5)):
            w, h = rng.uniform(20, 80, 2)
            x, y = rng.uniform(0, 600), rng.uniform(0, 320)
            det_rows.append(np.concatenate([[f, -1, x, y, w, h, rng.uniform(0.1, 0.5), -1, -1, -1],
                                            rng.normal(size=128) / np.sqrt(128)]))
    d = tmp / f"synth{seed}"
    d.mkdir(exist_ok=True)
    (d / "gt.txt").write_text("\n".join(gt_lines) + "\n")
    arr = np.array(det_rows)
    np.save(d / "det.npy", arr)
    np.savetxt(d / "det.txt", arr[:, :10], delimiter=",", fmt="%.3f")
    return d / "gt.txt", d / "det.txt", d / "det.npy"


def synthetic(args, tmp: Path, seeds=(1, 2)) -> None:
    """Table C: generated scenes with crossings, same detections for every tracker."""
    names = [f"synth-{s}" for s in seeds]
    files = {n: make_synthetic(tmp, s) for n, s in zip(names, seeds)}
    res: dict[str, dict] = {"vidtrack motion (det.txt)": {}, "vidtrack appearance (.npy)": {}}
    for n, (gt, det, npy) in files.items():
        for label, frames in (("vidtrack motion (det.txt)", read_detections(det)),
                              ("vidtrack appearance (.npy)", read_feature_detections(npy))):
            out = tmp / f"{n}-{label[:12].replace(' ', '_')}.txt"
            spent = run_vidtrack(frames, 250, TrackerConfig(), out)
            m = evaluate_mot(gt, out)
            m["ups"] = 250 / spent
            m["out"] = out
            m["vidtrack"] = True
            res[label][n] = m
    if not args.skip_peers:
        ensure_peer_venv()
        jobs = [{"tracker": p, "det": str(files[n][1]), "out": str(tmp / f"{p}-{n}.txt"), "frames": 250}
                for p in MOTION_PEERS for n in names]
        jobs += [{"tracker": "deepsort", "det": str(files[n][2]), "out": str(tmp / f"deepsort-{n}.txt"), "frames": 250}
                 for n in names]
        secs = run_peers(jobs)
        for p in MOTION_PEERS + ["deepsort"]:
            res[p] = {}
            for n in names:
                out = tmp / f"{p}-{n}.txt"
                m = evaluate_mot(files[n][0], out)
                m["ups"] = 250 / secs[str(out)]
                m["out"] = out
                res[p][n] = m
    print_table("C. generated scenes with crossings (vidtrack.synthetic gt -> noisy detections + id embeddings)",
                res, names, mean=False)
    gts = {n: files[n][0] for n in names}
    print_table(f"C'. table C after offline gap interpolation (<= {INTERPOLATE_GAP} frames) for every tracker; upd/s of C",
                interpolated_table(res, gts.__getitem__, names), names, mean=False)


HELD_OUT_SEEDS = range(3, 11)  # generated scenes no default was chosen on (tables C use seeds 1 and 2)


def held_out_synthetic(tmp: Path) -> None:
    """The ablation's switches that changed a default, checked on generated scenes that no
    default was chosen on: mean HOTA / IDF1 over seeds 3-10, motion and appearance input."""
    variants = {
        "default": {},
        "DeepSORT aspect noise": {"aspect_process_std": 0.05, "aspect_measurement_std": 0.1},
        "coast_s=0 (matched only)": {"coast_s": 0.0},
        "+ORU (OC-SORT)": {"oru": True},
    }
    scores = {name: {"motion": [], "appearance": []} for name in variants}
    for seed in HELD_OUT_SEEDS:
        gt, det, npy = make_synthetic(tmp, seed)
        for mode, frames in (("motion", read_detections(det)), ("appearance", read_feature_detections(npy))):
            for name, over in variants.items():
                rows, _ = track_sequence(frames, TrackerConfig(**over), 250)
                out = tmp / f"held-out-{seed}-{mode}.txt"
                write_mot(out, rows)
                m = evaluate_mot(gt, out)
                scores[name][mode].append((m["HOTA"], m["IDF1"]))
    print(f"\n## held-out generated scenes (seeds {HELD_OUT_SEEDS.start}-{HELD_OUT_SEEDS.stop - 1}), "
          "mean HOTA / IDF1, and on how many seeds each is above / below the default by more than 0.0005")
    print(f"{'vidtrack':<32}{'motion (det.txt)':>44}{'appearance (.npy)':>46}")
    for name in variants:
        cells = ""
        for mode in ("motion", "appearance"):
            v, d = np.array(scores[name][mode]), np.array(scores["default"][mode])
            above, below = (v > d + 5e-4).sum(axis=0), (v < d - 5e-4).sum(axis=0)
            cells += (f"{v[:, 0].mean():>10.3f} / {v[:, 1].mean():.3f}  "
                      f"HOTA +{above[0]} -{below[0]}, IDF1 +{above[1]} -{below[1]}")
        print(f"{name:<32}{cells}")


# ----------------------------------------------------------------------------- the pool bench
POOL_PEERS = MOTION_PEERS + ["deepsort"]  # deepsort: deep-sort-realtime on det.npy (the same embeddings as ours)
METRICS = ("HOTA", "IDF1", "MOTA", "IDSW", "AssA")
MODES = {"motion": {}, "frames": {"frames": True}}  # vidtrack track-detections without / with --frames


def run_candidate(job: tuple) -> tuple[str, str, str, dict]:
    """(mode, candidate name, sequence name, metrics) of one vidtrack run on a pool sequence,
    as ``vidtrack track-detections`` runs it at the sequence's frame rate (``frames``: the .npy
    with the frames' embeddings and the camera motion estimated from the frames, as
    ``--frames`` does)."""
    mode, name, cand, seq, out = job
    over, run = split_options(cand)
    with_frames = run.get("frames", False)
    frames = read_feature_detections(seq.embeddings(run.get("embedder", "default"))) if with_frames \
        else read_detections(seq.det)
    warps = seq.warps() if with_frames and run.get("camera_motion", "sparse_flow") != "none" else None
    rows, spent = track_sequence(frames, TrackerConfig(**over), seq.n_frames, backfill=run.get("backfill", True),
                                 interpolate=run.get("interpolate", 0), frame_rate=seq.fps, warps=warps)
    write_mot(out, rows)
    m = evaluate_mot(seq.gt, out)
    return mode, name, seq.name, {k: m[k] for k in METRICS} | {"ups": seq.n_frames / max(spent, 1e-9)}


PEER_OUTPUTS = ("peer-stdout.txt", "peer-stderr.txt")  # the peer run's stdout and stderr, in its tmp folder


def start_peers(pool: list, tmp: Path) -> tuple[subprocess.Popen, list[dict]]:
    """Every peer on every pool sequence, in the background (bench/.venv-peers): BoT-SORT with
    CMC on the frames, DeepSORT on the .npy embeddings, each given the sequence's frame rate."""
    ensure_peer_venv()
    jobs = []
    for seq in pool:
        for p in POOL_PEERS:
            job = {"tracker": p, "det": str(seq.npy if p == "deepsort" else seq.det), "frames": seq.n_frames,
                   "fps": seq.fps, "out": str(tmp / f"peer-{p}-{seq.folder.name}.txt"), "seq": seq.name}
            if p == "botsort":
                job["images"] = str(seq.img_dir)
            jobs.append(job)
    path = tmp / "peer-jobs.json"
    path.write_text(json.dumps(jobs))
    # to files, not pipes: nobody reads a pipe until the peers are done, and a peer that
    # filled one (64 KiB of warnings) would stop in write(2) with its clock running
    with (tmp / PEER_OUTPUTS[0]).open("w") as out, (tmp / PEER_OUTPUTS[1]).open("w") as err:
        proc = subprocess.Popen([str(PEER_PY), str(ROOT / "bench" / "peer_runner.py"), str(path)],
                                stdout=out, stderr=err)
    return proc, jobs


def collect_peers(proc: subprocess.Popen, jobs: list[dict], pool: list, tmp: Path) -> dict[str, dict[str, dict]]:
    """{peer: {sequence: metrics}} once the background peer run (its output in ``tmp``) is done."""
    proc.wait()
    out, err = ((tmp / name).read_text(errors="replace") for name in PEER_OUTPUTS)
    if proc.returncode != 0:
        raise RuntimeError(f"peer_runner failed: {err[-2000:]}")
    secs = {r["out"]: r["seconds"] for r in (json.loads(line) for line in out.splitlines() if line.startswith("{"))}
    gts = {s.name: s for s in pool}
    res: dict[str, dict[str, dict]] = {}
    for job in jobs:
        seq = gts[job["seq"]]
        m = evaluate_mot(seq.gt, job["out"])
        name = "botsort (CMC)" if job["tracker"] == "botsort" else job["tracker"]
        res.setdefault(name, {})[seq.name] = {k: m[k] for k in METRICS} | {"ups": seq.n_frames / max(secs[job["out"]], 1e-9)}
    return res


def run_grid(pool: list, grid: dict[str, dict], tmp: Path, workers: int) -> dict[str, dict[str, dict[str, dict]]]:
    """{mode: {candidate: {sequence: metrics}}} for every candidate of the grid in both modes."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp

    jobs = [(mode, name, {**cand, **extra}, seq, tmp / f"vt-{mode}-{i}-{seq.folder.name}.txt")
            for mode, extra in MODES.items() for i, (name, cand) in enumerate(grid.items()) for seq in pool]
    res: dict = {mode: {name: {} for name in grid} for mode in MODES}
    if workers <= 1:
        results = map(run_candidate, jobs)
    else:
        ex = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
        results = ex.map(run_candidate, jobs, chunksize=4)
    for mode, name, seq, m in results:
        res[mode][name][seq] = m
    if workers > 1:
        ex.shutdown()
    return res


def joint_scores(res: dict[str, dict[str, dict[str, dict]]]) -> dict[str, dict[str, tuple]]:
    """{candidate: {sequence: (HOTA, IDF1)}} averaged over the modes: one tracker default
    serves ``track-detections`` with and without frames, so it is chosen on both at once
    (leaving a sequence out leaves out both of its runs)."""
    modes = list(res)
    return {name: {s: tuple(sum(res[m][name][s][k] for m in modes) / len(modes) for k in ("HOTA", "IDF1"))
                   for s in res[modes[0]][name]} for name in res[modes[0]]}


def hota_idf1(table: dict[str, dict[str, dict]]) -> dict[str, dict[str, tuple]]:
    return {name: {s: (m["HOTA"], m["IDF1"]) for s, m in per.items()} for name, per in table.items()}


def best_peer(peers: dict[str, dict[str, dict]], seq: str) -> tuple[str, tuple]:
    name = max(peers, key=lambda p: objective((peers[p][seq]["HOTA"], peers[p][seq]["IDF1"])))
    return name, (peers[name][seq]["HOTA"], peers[name][seq]["IDF1"])


def print_sequence_tables(pool: list, rows: dict[str, dict[str, dict]]) -> None:
    """Per sequence: HOTA / IDF1 / MOTA / IDSW / AssA / updates per second of every row; the
    best HOTA and the best IDF1 of each sequence are marked *."""
    print("\n## per sequence, same detections for every tracker (HOTA IDF1 MOTA IDSW AssA, tracker updates/s); * = best")
    for seq in pool:
        print(f"\n{seq.name} ({seq.kind}, {seq.n_frames} frames @ {seq.fps:g} fps)")
        have = {n: per[seq.name] for n, per in rows.items() if seq.name in per}
        top = {k: max(m[k] for m in have.values()) for k in ("HOTA", "IDF1")}
        for name, m in have.items():
            star = {k: "*" if m[k] >= top[k] - 1e-9 else " " for k in top}
            print(f"  {name:<50}{m['HOTA']:>7.3f}{star['HOTA']}{m['IDF1']:>7.3f}{star['IDF1']}{m['MOTA']:>7.3f}"
                  f"{m['IDSW']:>6d}{m['AssA']:>7.3f}{m['ups']:>8.0f}")


def print_wins(pool: list, rows: dict[str, dict[str, dict]], peers: dict[str, dict[str, dict]]) -> None:
    """On how many sequences each vidtrack row has the best HOTA and the best IDF1 of all peers."""
    print("\n## target: best HOTA and IDF1 on every sequence (vidtrack row vs every peer)")
    for name, per in rows.items():
        if name in peers:
            continue
        wins = {k: [s.name for s in pool if per[s.name][k] >= max(p[s.name][k] for p in peers.values()) - 1e-9]
                for k in ("HOTA", "IDF1")}
        lost = [s.name for s in pool if s.name not in wins["HOTA"] or s.name not in wins["IDF1"]]
        print(f"  {name:<50} HOTA best on {len(wins['HOTA'])}/{len(pool)}, IDF1 best on {len(wins['IDF1'])}/{len(pool)}"
              + (f"; not both on: {', '.join(lost)}" if lost else ""))


def pool_bench(args, tmp: Path) -> None:
    """The pool bench: build the pool, run the peers (background) and the candidate grid in
    both modes, print the selection (in-sample and held out) and the per-sequence table."""
    pool = build_pool(only=args.pool)
    for seq in pool:  # the camera motion of each sequence's frames, estimated once (cached)
        seq.warps()
    proc, jobs = (None, []) if args.skip_peers else start_peers(pool, tmp)
    grid = {"default": {}} if args.skip_ablation else coordinate_grid()
    t0 = time.perf_counter()
    res = run_grid(pool, grid, tmp, args.jobs)
    print(f"\n[{len(grid)} candidates x {len(MODES)} modes x {len(pool)} sequences in {time.perf_counter() - t0:.0f} s]")
    peers = collect_peers(proc, jobs, pool, tmp) if proc else {}
    rows = {f"vidtrack default ({mode})": res[mode]["default"] for mode in MODES}
    for mode in MODES:
        scores = hota_idf1(res[mode])
        if len(grid) < 2 or len(pool) < 2:
            continue
        sel = leave_one_out(scores)
        print_selection(f"vidtrack, {mode}", scores, sel, {s.name: best_peer(peers, s.name) for s in pool} if peers else None)
        rows[f"vidtrack held-out ({mode})"] = {s: res[mode][c][s] for s, c in sel.held_out.items()}
        if sel.full != "default":
            rows[f"vidtrack {sel.full} ({mode}, in-sample)"] = res[mode][sel.full]
    if len(grid) > 1 and len(pool) > 1:
        joint = joint_scores(res)
        sel = leave_one_out(joint)
        print_selection("vidtrack, one default for both modes (a sequence's score: the mean of its motion and "
                        "frames runs)", joint, sel)
        rows["vidtrack held-out (joint, motion)"] = {s: res["motion"][c][s] for s, c in sel.held_out.items()}
        rows["vidtrack held-out (joint, frames)"] = {s: res["frames"][c][s] for s, c in sel.held_out.items()}
    if args.save_scores:
        Path(args.save_scores).write_text(json.dumps(res))
    if args.only_selection:
        return
    rows.update(peers)
    print_sequence_tables(pool, rows)
    if peers:
        print_wins(pool, rows, peers)


def header() -> None:
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    print(f"# bench/tracker.py: {model}, {os.cpu_count()} CPUs, load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-peers", action="store_true", help="no peer trackers")
    ap.add_argument("--skip-speed", action="store_true", help="no update-speed section")
    ap.add_argument("--skip-ablation", action="store_true", help="vidtrack defaults only: no candidate grid, no selection")
    ap.add_argument("--only-selection", action="store_true", help="only the selection tables (no per-sequence table, no speed)")
    ap.add_argument("--pool", action="append", metavar="SUBSTR", help="only pool sequences whose name contains SUBSTR")
    ap.add_argument("--jobs", type=int, default=2, help="processes for the vidtrack runs (default 2)")
    ap.add_argument("--save-scores", metavar="JSON", help="write every candidate's metrics per mode and sequence here")
    ap.add_argument("--legacy", action="store_true", help="also the older tables A-D, the ablation and C / C' (MOT15 inputs)")
    ap.add_argument("--skip-synthetic", action="store_true", help="with --legacy: no tables C / C' and held-out seeds")
    args = ap.parse_args()
    header()
    with tempfile.TemporaryDirectory() as tmp:
        pool_bench(args, Path(tmp))
        if args.legacy:
            accuracy(args, Path(tmp))
            if not args.skip_ablation:
                ablation(Path(tmp))
            if not args.skip_synthetic:
                synthetic(args, Path(tmp))
                held_out_synthetic(Path(tmp))
    if not args.skip_speed and not args.only_selection:
        speed(peers=not args.skip_peers)


if __name__ == "__main__":
    main()
