"""TrackEval-based metrics checked on py-motmetrics' fixtures."""
import numpy as np
import pytest

from tests.conftest import require
from vidtrack.evaluation import evaluate_mot, evaluate_rows
from base.mot import read_mot


@pytest.mark.parametrize("seq", ["TUD-Campus", "TUD-Stadtmitte"])
def test_perfect_result_scores_one(shared_data, seq):
    gt = require(shared_data / "eval-fixtures" / seq / "gt.txt")
    m = evaluate_mot(gt, gt)
    for k in ("HOTA", "DetA", "AssA", "MOTA", "IDF1"):
        assert m[k] == pytest.approx(1.0)
    assert m["IDSW"] == m["FP"] == m["FN"] == 0 and m["ML"] == 0


@pytest.mark.parametrize("seq", ["TUD-Campus", "TUD-Stadtmitte"])
def test_fixture_result_is_consistent(shared_data, seq):
    gt = require(shared_data / "eval-fixtures" / seq / "gt.txt")
    res = require(shared_data / "eval-fixtures" / seq / "test.txt")
    m = evaluate_mot(gt, res)
    n_gt = len(read_mot(gt))
    # MOTA from its CLEAR counts, and the counts add up
    assert m["MOTA"] == pytest.approx(1 - (m["FN"] + m["FP"] + m["IDSW"]) / n_gt)
    assert m["TP"] + m["FN"] == n_gt and m["TP"] + m["FP"] == len(read_mot(res))
    assert 0.3 < m["MOTA"] < 0.7 and 0.4 < m["IDF1"] < 0.8 and 0.3 < m["HOTA"] < 0.6
    assert m["HOTA"] == pytest.approx(np.sqrt(m["DetA"] * m["AssA"]), abs=0.02)


def test_id_swap_is_counted_and_lowers_idf1(shared_data):
    gt = read_mot(require(shared_data / "eval-fixtures/TUD-Campus/gt.txt"))
    swapped = gt.copy()
    ids = np.unique(gt[:, 1])
    a, b = ids[0], ids[1]
    late = swapped[:, 0] > np.median(swapped[:, 0])
    sel_a, sel_b = late & (gt[:, 1] == a), late & (gt[:, 1] == b)
    swapped[sel_a, 1], swapped[sel_b, 1] = b, a
    m = evaluate_rows(gt, swapped)
    assert m["IDSW"] >= 1 and m["MOTA"] < 1 and m["IDF1"] < 1 and m["HOTA"] < 1
    assert m["FP"] == m["FN"] == 0
