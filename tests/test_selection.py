"""bench/selection.py: leave-one-sequence-out choice on a small made-up score table."""
import pytest

from bench.selection import COMBOS, KNOBS, RUN_OPTIONS, best_on, coordinate_grid, leave_one_out, split_options
from tracker import TrackerConfig

# "spike" is by far the best on s3 alone and poor elsewhere: chosen on all sequences (its s3
# score lifts its mean), but never when s3 is left out -- and on s3 itself it must not be
# chosen, since the choice for s3 is made on s1, s2, s4 only.
SCORES = {
    "default": {"s1": (0.50, 0.50), "s2": (0.50, 0.50), "s3": (0.50, 0.50), "s4": (0.50, 0.50)},
    "steady": {"s1": (0.52, 0.52), "s2": (0.52, 0.52), "s3": (0.40, 0.40), "s4": (0.52, 0.52)},
    "spike": {"s1": (0.45, 0.45), "s2": (0.45, 0.45), "s3": (0.95, 0.95), "s4": (0.45, 0.45)},
}


def test_chooses_on_the_other_sequences_only():
    sel = leave_one_out(SCORES)
    assert sel.full == "spike"  # mean 0.575 vs steady 0.49 and default 0.5
    assert sel.held_out["s3"] == "steady"  # on s1, s2, s4: steady 0.52 > default 0.5 > spike 0.45
    for s in ("s1", "s2", "s4"):
        assert sel.held_out[s] == "spike"  # s3 is among the others
    held = [0.45, 0.45, 0.40, 0.45]
    assert sel.held_out_mean == pytest.approx(sum(held) / 4)
    assert sel.default_mean == pytest.approx(0.5)
    assert not sel.won  # the full-pool choice rests on one sequence: it loses held out
    assert (sel.better, sel.worse) == (0, 4)


def test_a_consistent_winner_wins_held_out():
    scores = {"default": SCORES["default"],
              "better": {s: (h + 0.01, i + 0.02) for s, (h, i) in SCORES["default"].items()}}
    sel = leave_one_out(scores)
    assert sel.full == "better" and set(sel.held_out.values()) == {"better"} and sel.won
    assert (sel.better, sel.worse) == (4, 0)


def test_objective_mixes_hota_and_idf1_and_ties_go_to_the_first():
    scores = {"default": {"a": (0.6, 0.4), "b": (0.6, 0.4)}, "other": {"a": (0.4, 0.6), "b": (0.4, 0.6)}}
    assert best_on(scores, ["a", "b"]) == "default"
    scores["other"]["a"] = (0.41, 0.6)
    assert best_on(scores, ["a"]) == "other"


def test_needs_two_sequences():
    with pytest.raises(ValueError):
        leave_one_out({"default": {"a": (0.5, 0.5)}})


def test_grid_is_valid_tracker_configs():
    grid = coordinate_grid()
    assert next(iter(grid)) == "default" and grid["default"] == {}
    assert len(grid) == 1 + sum(len(v) for v in KNOBS.values()) + len(COMBOS)
    for over in grid.values():
        cfg, run = split_options({**over, "frames": True})
        assert run["frames"] is True and set(run) <= set(RUN_OPTIONS)
        TrackerConfig(**cfg)  # raises ConfigError on a bad key or value
