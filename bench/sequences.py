"""The tracker benchmark's sequence pool, built once and cached under bench/.cache/pool/.

Every sequence is a folder with ``gt.txt`` (MOT gt; conf 0 rows are ignored), ``det.txt``
(MOT detections), ``det.npy`` (float64[N, 10 + 128]: the det.txt rows + the shipped
embedder's ``"default"`` vector of each box, computed on the frames, as
``vidtrack track-detections --frames`` computes them) and ``meta.json`` (fps, frames, the
image folder; ``camera.txt`` for generated scenes: the true 2x3 warp per frame).

Pool (:func:`build_pool`):
  real      TUD-Campus, TUD-Stadtmitte, KITTI-17 (../shared/data/mot), each with the FRCNN
            detections (mot/sort-frcnn-det) and with Yolo-Fastest 1.1 body detections at
            score >= 0.1 computed on img1 by OpenCV 4 DNN (bench/opencv4_env.py; the frame
            resized to 320x320, as cv2.dnn.blobFromImage does, NMS 0.45; OpenCV's yolo layer
            itself zeroes scores below 0.2, its default ``thresh`` for a cfg without one, so
            the lowest score kept is ~0.2);
  default   generated scenes (vidtrack.synthetic, 640x360, 25 fps, 250 frames), seeds 11-13;
  hard      ``SceneConfig.hard(seed)`` (panning, shaking camera, crowd of small look-alikes,
            occluders), seeds 21-22 at 30 fps and 23 at 7.5 fps.
The shipped embedder was trained on gt crops of KITTI-17, TUD-Stadtmitte, generated scenes and tracklets of two unlabelled videos
(base/models/embedder.md), so the "frames" scores on those two real sequences are optimistic.
Generated scenes get noisy detections from gt: every box seen at >= 20 % visibility kept
with p = 0.9, jittered by 3 % of its size, score 0.35 + 0.6 * visibility (+-0.05), plus ~0.5
false positives per frame at 0.1..0.5 (bench/tracker.py make_synthetic's recipe). Seeds 1-10
were used for choosing earlier defaults; these are new.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from base.mot import read_seqinfo
from detector.camera_motion import image_files, warps_of_frames

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VIDTRACK_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = ROOT / "bench" / ".cache" / "pool"
REAL = ("TUD-Campus", "TUD-Stadtmitte", "KITTI-17")
YOLO = DATA / "yolo-fastest" / "yolo-fastest-1.1_body"
YOLO_CONF, YOLO_IOU, YOLO_SIZE = 0.1, 0.45, 320
DEFAULT_SEEDS = (11, 12, 13)
HARD = ((21, 30.0), (22, 30.0), (23, 7.5))
EMBEDDERS = ("default", "histogram", "default+histogram")  # embedder specs the pool has vectors for
POOL_VERSION = 1  # bump when the recipe changes: cached folders of another version are rebuilt


@dataclass(frozen=True)
class Sequence:
    """One cached sequence of the pool (paths inside its cache folder)."""

    name: str
    kind: str  # "real", "default" or "hard"
    folder: Path
    fps: float
    n_frames: int
    img_dir: Path

    @property
    def gt(self) -> Path:
        return self.folder / "gt.txt"

    @property
    def det(self) -> Path:
        return self.folder / "det.txt"

    @property
    def npy(self) -> Path:
        return self.folder / "det.npy"

    def embeddings(self, spec: str = "default") -> Path:
        """det.txt's rows with the vectors of embedder ``spec`` (:data:`EMBEDDERS`) appended, as
        ``vidtrack track-detections --frames --embedder SPEC`` computes them: det.npy for the
        shipped model, the others computed once into the folder (det-histogram.npy, ...)."""
        if spec == "default":
            return self.npy
        if spec not in EMBEDDERS:
            raise ValueError(f"no pool embeddings for {spec!r}: one of {EMBEDDERS}")
        path = self.folder / f"det-{spec.replace('+', '-')}.npy"
        if not path.exists():
            if "+" in spec:
                rows = fused_rows([np.load(self.embeddings(part)) for part in spec.split("+")])
            else:
                from detector.appearance import load_embedder

                rows = with_embeddings(np.load(self.npy)[:, :10], self.img_dir, load_embedder(spec))
            np.save(path, rows)
        return path

    @property
    def camera(self) -> Path | None:
        p = self.folder / "camera.txt"
        return p if p.is_file() else None

    def warps(self) -> dict[int, np.ndarray]:
        """``{1-based frame: float32[2,3]}``: the camera motion estimated from the frames (as
        ``vidtrack track-detections --frames`` estimates it), cached in the folder as warps.npy."""
        return cached_warps(self.img_dir, self.folder / "warps.npy")


def cached_warps(img_dir: Path, path: Path) -> dict[int, np.ndarray]:
    """``{1-based frame: float32[2,3]}`` of the images of ``img_dir`` (the default estimator of
    :mod:`detector.camera_motion`), estimated once into ``path`` (float32[N,2,3], frame i+1 at
    row i) and read from there after."""
    if not path.exists():
        warps = warps_of_frames(image_files(img_dir))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.stack([warps[f] for f in sorted(warps)]))
    return {i + 1: w for i, w in enumerate(np.load(path))}


def yolo_detections(img_dir: Path, batch: int = 32) -> np.ndarray:
    """Yolo-Fastest 1.1 body person detections (OpenCV 4 DNN) of every image in ``img_dir``:
    float64[N, 10] MOT det rows (frame 1-based, -1, x, y, w, h, score, -1, -1, -1)."""
    from bench import opencv4_env as cv4

    files = image_files(img_dir)
    rows = []
    for start in range(0, len(files), batch):
        imgs = [cv2.imread(str(p)) for p in files[start:start + batch]]
        h, w = imgs[0].shape[:2]
        blob = np.stack([cv2.resize(im, (YOLO_SIZE, YOLO_SIZE), interpolation=cv2.INTER_LINEAR)[..., ::-1]
                         for im in imgs]).astype(np.float32) / 255.0
        out = cv4.run(YOLO / "yolo-fastest-1.1_body.cfg", YOLO / "yolo-fastest-1.1_body.weights", "detect",
                      cv4.nhwc_to_blob(blob), conf=YOLO_CONF, iou=YOLO_IOU)
        for i in range(len(imgs)):
            b = out[f"boxes{i}"].astype(np.float64) * np.array([w, h, w, h]) / YOLO_SIZE
            s = out[f"scores{i}"].astype(np.float64)
            f = np.full(len(s), start + i + 1.0)
            neg = -np.ones(len(s))
            rows.append(np.stack([f, neg, b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1], s, neg, neg, neg], 1))
    return np.concatenate(rows) if rows else np.zeros((0, 10))


def noisy_detections(gt_frames: list[list[tuple]], width: int, height: int, seed: int) -> np.ndarray:
    """Detections from generated gt (see the module doc): float64[N, 10] MOT det rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for f, gt in enumerate(gt_frames, 1):
        for _tid, _cls, x1, y1, x2, y2, vis in gt:
            if vis < 0.2 or rng.random() > 0.9:
                continue
            w, h = x2 - x1, y2 - y1
            bx = np.array([x1, y1, w, h]) + rng.normal(0, 0.03, 4) * [w, h, w, h]
            score = float(np.clip(0.35 + 0.6 * vis + rng.normal(0, 0.05), 0.05, 1.0))
            rows.append([f, -1, *bx, score, -1, -1, -1])
        for _ in range(rng.poisson(0.5)):
            w, h = rng.uniform(20, 80, 2)
            x, y = rng.uniform(0, width - 40), rng.uniform(0, height - 40)
            rows.append([f, -1, x, y, w, h, rng.uniform(0.1, 0.5), -1, -1, -1])
    return np.array(rows, np.float64).reshape(-1, 10)


def fused_rows(parts: list[np.ndarray]) -> np.ndarray:
    """The same det rows float64[N, 10 + D_k] with each part's unit vectors -> float64[N, 10 +
    sum D_k] with their equal-weight fusion, as :class:`detector.appearance.FusedEmbedder`
    computes it: the parts scaled by sqrt(1/k), concatenated, L2-normalised."""
    scale = np.sqrt(1.0 / len(parts))
    vecs = np.concatenate([scale * p[:, 10:] for p in parts], axis=1)
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    return np.concatenate([parts[0][:, :10], vecs], axis=1)


def with_embeddings(rows: np.ndarray, img_dir: Path, embedder, chunk: int = 16) -> np.ndarray:
    """det rows float64[N, 10] -> float64[N, 10 + D]: + the embedder's vector of each box on its frame."""
    files = image_files(img_dir)
    frames = rows[:, 0].astype(int)
    out = np.zeros((len(rows), 10 + embedder.dim))
    out[:, :10] = rows
    for start in range(1, len(files) + 1, chunk):
        fs = [f for f in range(start, min(start + chunk, len(files) + 1))]
        idx = [np.nonzero(frames == f)[0] for f in fs]
        boxes = [np.stack([rows[i, 2], rows[i, 3], rows[i, 2] + rows[i, 4], rows[i, 3] + rows[i, 5]], 1).astype(np.float32)
                 for i in idx]
        embs = embedder.embed([cv2.imread(str(files[f - 1])) for f in fs], boxes)
        for i, e in zip(idx, embs):
            out[i, 10:10 + e.shape[1]] = e
    return out


# ----------------------------------------------------------------------------- building
def embedder_stamp() -> str:
    """The shipped embedder file's SHA-256 (16 hex digits): det.npy holds that model's
    vectors, so a cached sequence embedded by another model is embedded again."""
    from base.paths import DEFAULT_EMBEDDER

    return hashlib.sha256(DEFAULT_EMBEDDER.read_bytes()).hexdigest()[:16] if DEFAULT_EMBEDDER.is_file() else "none"


def _write(folder: Path, det: np.ndarray, embedder, meta: dict) -> None:
    np.savetxt(folder / "det.txt", det, delimiter=",", fmt="%.3f")
    _embed(folder, det, embedder, meta)


def _embed(folder: Path, det: np.ndarray, embedder, meta: dict) -> None:
    """det.npy of ``det`` with the shipped embedder's vectors; the other embedders' files removed."""
    img_dir = Path(meta["img_dir"])
    np.save(folder / "det.npy", with_embeddings(det, img_dir if img_dir.is_absolute() else folder / img_dir, embedder))
    for derived in folder.glob("det-*.npy"):
        derived.unlink()
    (folder / "meta.json").write_text(json.dumps({**meta, "version": POOL_VERSION, "embedder": embedder_stamp()}))


def _real(folder: Path, seq: str, detector: str, embedder) -> None:
    src = DATA / "mot" / seq
    info = read_seqinfo(src / "seqinfo.ini")
    gt = np.loadtxt(src / "gt" / "gt.txt", delimiter=",", ndmin=2)
    np.savetxt(folder / "gt.txt", gt, delimiter=",", fmt="%g")
    if detector == "frcnn":
        det = np.loadtxt(DATA / "mot" / "sort-frcnn-det" / seq / "det.txt", delimiter=",", ndmin=2)[:, :10]
    else:
        det = yolo_detections(src / "img1")
    _write(folder, det, embedder, {"fps": float(info["frameRate"]), "n_frames": int(info["seqLength"]),
                                   "img_dir": str(src / "img1")})


def _generated(folder: Path, cfg, embedder) -> None:
    from vidtrack.synthetic import generate_scene

    img = folder / "img1"
    img.mkdir(exist_ok=True)
    gt_frames, gt_lines, cam = [], [], []
    for i, image, gt, warp in generate_scene(cfg, with_camera=True):
        cv2.imwrite(str(img / f"{i + 1:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        cam.append(f"{i + 1}," + ",".join(f"{v:g}" for v in warp.ravel()))
        gt_frames.append(gt)
        gt_lines += [f"{i + 1},{t},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{int(v >= 0.2)},-1,-1,-1"
                     for t, _c, x1, y1, x2, y2, v in gt]
    (folder / "gt.txt").write_text("\n".join(gt_lines) + "\n")
    (folder / "camera.txt").write_text("\n".join(cam) + "\n")
    det = noisy_detections(gt_frames, cfg.width, cfg.height, cfg.seed)
    _write(folder, det, embedder, {"fps": float(cfg.fps), "n_frames": int(cfg.num_frames), "img_dir": img.name})


def pool_specs() -> list[tuple[str, str, tuple]]:
    """(name, kind, builder args) of every sequence of the pool, in table order."""
    from vidtrack.synthetic import SceneConfig

    specs = [(f"{s}/{d}", "real", ("real", s, d)) for d in ("frcnn", "yolo") for s in REAL]
    specs += [(f"default-{s}", "default", ("gen", SceneConfig(seed=s, num_frames=250, max_objects=10)))
              for s in DEFAULT_SEEDS]
    specs += [(f"hard-{s}@{fps:g}", "hard", ("gen", SceneConfig.hard(s, fps=fps))) for s, fps in HARD]
    return specs


def _load(name: str, kind: str, folder: Path) -> tuple[Sequence, dict] | None:
    """The cached sequence in ``folder`` and its meta.json, or None where it must be built."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("version") != POOL_VERSION:
        return None
    img_dir = Path(meta["img_dir"])
    if not img_dir.is_absolute():  # generated scenes keep their frames inside the cache folder
        img_dir = folder / img_dir
    elif not img_dir.is_dir():  # an older cache, or a cache moved with its folder
        img_dir = folder / "img1"
    if not img_dir.is_dir():
        return None  # the frames are gone: build it again
    return Sequence(name, kind, folder, meta["fps"], meta["n_frames"], img_dir), meta


def _shipped_embedder():
    from detector.appearance import load_embedder

    return load_embedder("default")


def build_pool(cache: Path = CACHE, only: list[str] | None = None, log=print) -> list[Sequence]:
    """Every sequence of the pool (``only``: those whose name contains one of the strings),
    building the missing ones (real data absent: those are skipped with a message)."""
    embedder, stamp = None, embedder_stamp()
    pool = []
    for name, kind, args in pool_specs():
        if only and not any(o in name for o in only):
            continue
        folder = cache / name.replace("/", "_").replace("@", "_")
        loaded = _load(name, kind, folder)
        if loaded is None:
            if args[0] == "real" and not (DATA / "mot" / args[1] / "img1").is_dir():
                log(f"[pool] {name}: skipped, {DATA / 'mot' / args[1]} not found")
                continue
            embedder = embedder or _shipped_embedder()
            log(f"[pool] building {name} in {folder}")
            folder.mkdir(parents=True, exist_ok=True)
            if args[0] == "real":
                _real(folder, args[1], args[2], embedder)
            else:
                _generated(folder, args[1], embedder)
            seq, _ = _load(name, kind, folder)
        else:
            seq, meta = loaded
            if meta.get("embedder") != stamp:
                embedder = embedder or _shipped_embedder()
                log(f"[pool] {name}: embedding again with the shipped embedder")
                _embed(folder, np.load(seq.npy)[:, :10], embedder, meta)
        pool.append(seq)
    return pool
