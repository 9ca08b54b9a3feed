"""Leave-one-sequence-out choice of tracker defaults, and the candidate grid it chooses from.

A candidate is a name -> dict of :class:`tracker.TrackerConfig` overrides; keys in
:data:`RUN_OPTIONS` are options of the run instead (``frames``: embeddings computed on the
frames, as ``vidtrack track-detections --frames``; later e.g. camera motion). Scores are
``scores[candidate][sequence] = (HOTA, IDF1)``; the objective of a candidate over a set of
sequences is the mean of (HOTA + IDF1) / 2.

:func:`leave_one_out`: for each sequence, the candidate with the best objective over the
OTHER sequences is chosen and scored on the left-out one; the full-pool choice (best over
all) is what the default should be. Ties go to the earlier candidate (the default first).
"""
from __future__ import annotations

from dataclasses import dataclass

# keys of a candidate that are not TrackerConfig fields
RUN_OPTIONS = ("frames", "backfill", "interpolate", "camera_motion", "embedder")

# Coordinate-wise grid: one knob at a time changed from the default (TrackerConfig's).
# Extend by adding a knob and its values here; COMBOS holds hand-made joint changes.
KNOBS: dict[str, tuple] = {
    "high_score_threshold": (0.3, 0.5, 0.6),
    "low_score_threshold": (0.3, 0.5),  # OpenCV's yolo layer drops scores < 0.2, FRCNN's start at 0.5
    "max_iou_distance": (0.7, 0.8),
    "max_age_s": (0.6, 1.2, 3.6),  # seconds (2.4 = 60 frames at 25 fps)
    "init_s": (0.08, 0.16),  # 2 and 4 frames at 25 fps
    "coast_s": (0.0, 0.2),
    "direction_weight": (0.2,),
    "oru": (True,),
    "association": ("cascade", "weighted"),  # appearance: DeepSORT's cascade, Deep OC-SORT's weighting (its defaults)
    "appearance_threshold": (0.05, 0.4),
    "appearance_iou_gate": (0.3,),
    "appearance_isolation_iou": (0.5, 0.3, 0.1, 0.0),  # appearance only for detections overlapping no other
    "appearance_ratio": (0.5, 0.3, 0.2, 0.1),  # appearance only where it tells the rivals apart (Lowe's ratio)
    "appearance_units": ("stream",),  # cosine over the stream's typical distance between two people
    "appearance": (False,),  # with frames: motion only all the same
    "camera_motion": ("none",),  # with frames: no camera-motion compensation
    "embedder": ("histogram", "default+histogram"),  # with frames: another --embedder than the shipped model
}
COMBOS: dict[str, dict] = {
    "max_age=1.2 max_iou=0.8 (before)": {"max_age_s": 1.2, "max_iou_distance": 0.8},
    "hi=0.6 max_age=3.6": {"high_score_threshold": 0.6, "max_age_s": 3.6},
    "low=0.3 init=0.08": {"low_score_threshold": 0.3, "init_s": 0.08},
    "hi=0.5 low=0.3": {"high_score_threshold": 0.5, "low_score_threshold": 0.3},
    "low=0.3 OCM 0.2": {"low_score_threshold": 0.3, "direction_weight": 0.2},
}


def label(key: str, value) -> str:
    return f"{key}={value}"


def coordinate_grid(knobs: dict[str, tuple] = KNOBS, combos: dict[str, dict] = COMBOS,
                    base: dict | None = None) -> dict[str, dict]:
    """{"default": base, "knob=value": base + that one change, ..., combos}: candidates in order."""
    base = dict(base or {})
    grid = {"default": base}
    for key, values in knobs.items():
        for v in values:
            grid[label(key, v)] = {**base, key: v}
    for name, over in combos.items():
        grid[name] = {**base, **over}
    return grid


def split_options(candidate: dict) -> tuple[dict, dict]:
    """(TrackerConfig overrides, run options) of a candidate dict."""
    cfg = {k: v for k, v in candidate.items() if k not in RUN_OPTIONS}
    run = {k: v for k, v in candidate.items() if k in RUN_OPTIONS}
    return cfg, run


def objective(score: tuple[float, float]) -> float:
    """(HOTA, IDF1) -> (HOTA + IDF1) / 2."""
    return (score[0] + score[1]) / 2


def best_on(scores: dict[str, dict[str, tuple]], seqs: list[str]) -> str:
    """The candidate with the best mean objective over ``seqs`` (first one on ties)."""
    best, best_val = None, float("-inf")
    for name, per in scores.items():
        val = sum(objective(per[s]) for s in seqs) / len(seqs)
        if val > best_val + 1e-12:
            best, best_val = name, val
    return best


@dataclass
class Selection:
    """Result of :func:`leave_one_out`.

    held_out: {sequence: chosen candidate (chosen on the other sequences)};
    full: the candidate chosen on all sequences; default: the reference candidate's name;
    held_out_mean / default_mean: mean objective over the sequences of the held-out choices
    and of the default; won: held_out_mean > default_mean (the procedure beats the default
    on data it did not see)."""

    held_out: dict[str, str]
    full: str
    default: str
    held_out_mean: float
    default_mean: float
    better: int = 0  # folds where the held-out choice scores above / below the default on the left-out sequence
    worse: int = 0

    @property
    def won(self) -> bool:
        return self.held_out_mean > self.default_mean + 1e-9


def leave_one_out(scores: dict[str, dict[str, tuple]], default: str = "default") -> Selection:
    """Leave-one-sequence-out selection over ``scores[candidate][sequence] = (HOTA, IDF1)``
    (every candidate scored on the same sequences, at least two)."""
    seqs = list(next(iter(scores.values())))
    if len(seqs) < 2:
        raise ValueError("leave-one-out needs at least two sequences")
    held = {s: best_on(scores, [o for o in seqs if o != s]) for s in seqs}
    held_mean = sum(objective(scores[held[s]][s]) for s in seqs) / len(seqs)
    default_mean = sum(objective(scores[default][s]) for s in seqs) / len(seqs)
    diff = [objective(scores[held[s]][s]) - objective(scores[default][s]) for s in seqs]
    return Selection(held, best_on(scores, seqs), default, held_mean, default_mean,
                     sum(d > 1e-9 for d in diff), sum(d < -1e-9 for d in diff))


def print_selection(title: str, scores: dict[str, dict[str, tuple]], sel: Selection,
                    peers: dict[str, tuple[str, tuple]] | None = None) -> None:
    """The in-sample table (every candidate's HOTA/IDF1 per sequence and mean objective; the
    full-pool choice marked *), the held-out table (per sequence: chosen candidate, its score,
    the default's, the best peer's) and the verdict line."""
    seqs = list(sel.held_out)
    w = max(len(n) for n in scores) + 2
    print(f"\n## {title}: in-sample HOTA/IDF1 per sequence, mean (HOTA+IDF1)/2; * = chosen on all sequences")
    print(f"{'candidate':<{w}}" + "".join(f"{s[:14]:>15}" for s in seqs) + f"{'mean':>8}")
    for name, per in scores.items():
        mark = "*" if name == sel.full else " "
        cells = "".join(f"{per[s][0]:>8.3f}/{per[s][1]:.3f}"[-15:].rjust(15) for s in seqs)
        mean = sum(objective(per[s]) for s in seqs) / len(seqs)
        print(f"{mark}{name:<{w - 1}}{cells}{mean:>8.4f}")
    print(f"\n## {title}: held out (chosen on the other {len(seqs) - 1} sequences, scored on the one left out)")
    print(f"{'sequence':<22}{'chosen':<{w}}{'held-out HOTA/IDF1':>20}{'default':>16}{'best peer':>30}")
    for s in seqs:
        c = scores[sel.held_out[s]][s]
        d = scores[sel.default][s]
        peer = ""
        if peers and s in peers:
            pname, (ph, pi) = peers[s]
            peer = f"{pname} {ph:.3f}/{pi:.3f}"
        print(f"{s:<22}{sel.held_out[s]:<{w}}{c[0]:>12.3f}/{c[1]:.3f}{d[0]:>10.3f}/{d[1]:.3f}{peer:>30}")
    verdict = "wins" if sel.won else "does NOT win"
    print(f"full-pool choice (= what the default should be): {sel.full}; leave-one-out held-out mean "
          f"{sel.held_out_mean:.4f} vs default {sel.default_mean:.4f} (above the default on {sel.better}, below on "
          f"{sel.worse} of {len(seqs)} left-out sequences): the selection {verdict} held out"
          + ("" if sel.full != sel.default else " (the default is the full-pool choice)"))
