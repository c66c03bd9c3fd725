"""The ISBI 2014/2015 challenge's per-cell measures (DC, FNo, TPp, FPp) under both matchings, on hand-built
cells whose answers are worked out in the comments.

Cells here are full-height strips of a 10-row image: a strip of columns [a, b) has 10·(b − a) pixels, and
two strips overlap in 10 × (shared columns) pixels, so every Dice is a ratio of column counts.
"""

import json

import numpy as np
import pytest

from napari_cervix.cellset import CellSet, Masks
from napari_cervix.cli import main
from napari_cervix.io import write_coco
from napari_cervix.io.sample import CellSample
from napari_cervix.metrics import CHALLENGE_MATCHINGS, challenge_measures, mask_intersections
from napari_cervix.synth import generate_smear

GREEDY, GLOBAL = CHALLENGE_MATCHINGS
WIDTH = 40  # image 10 × 40 = 400 pixels


def _strip(a, b, width=WIDTH):
    mask = np.zeros((10, width), bool)
    mask[:, a:b] = True
    return mask


def _sample(*strips, width=WIDTH):
    return CellSample(image=np.zeros((10, width), np.uint8), cells=np.stack([_strip(a, b, width) for a, b in strips]))


def _prediction(*strips, scores=None, width=WIDTH):
    masks = np.stack([_strip(a, b, width) for a, b in strips]) if strips else np.zeros((0, 10, width), bool)
    return CellSet.from_stack(masks, scores=scores, shape=(10, width))


def test_one_found_cell_hand_computed():
    # GT [0, 10) (100 px), prediction [2, 12) (100 px): 80 px shared, 20 predicted outside the cell.
    # Dice = 2·80 / 200 = 0.8 > 0.7: found. TPp = 80 / 100. FPp = 20 / (400 − 100) = 1/15.
    m = challenge_measures([_sample((0, 10))], [_prediction((2, 12))])
    for name in CHALLENGE_MATCHINGS:
        assert m[name] == pytest.approx({"DC": 0.8, "FNo": 0.0, "TPp": 0.8, "FPp": 1 / 15, "found": 1})
    assert m["n_cells"] == 1 and m["dice_threshold"] == 0.7


@pytest.mark.parametrize("start, found", [(3, 0), (4, 0), (2, 1)])
def test_found_needs_dice_strictly_above_0_7(start, found):
    # Prediction [start, start + 10) on GT [0, 10): Dice = (10 − start) / 10 → 0.7 (not found: the rule
    # is Dice > 0.7), 0.6 (not found), 0.8 (found).
    m = challenge_measures([_sample((0, 10))], [_prediction((start, start + 10))])
    for name in CHALLENGE_MATCHINGS:
        assert m[name]["found"] == found
        assert m[name]["FNo"] == 1 - found
        assert (m[name]["DC"] is None) == (found == 0)


def test_two_cells_competing_for_one_prediction_split_greedy_and_global():
    # GT A = [0, 20) (first), B = [2, 20); P1 = [2, 20), P2 = [0, 12).
    # Dice(A, P1) = 2·18/38 = 18/19, Dice(A, P2) = 2·12/32 = 0.75, Dice(B, P1) = 1, Dice(B, P2) = 2·10/30 = 2/3.
    sample = _sample((0, 20), (2, 20))
    pred = _prediction((2, 20), (0, 12))
    m = challenge_measures([sample], [pred])
    # Greedy, GT order: A takes its best, P1; B is left P2 (2/3 ≤ 0.7): one found, TPp(A, P1) = 18/20.
    assert m[GREEDY] == pytest.approx({"DC": 18 / 19, "FNo": 0.5, "TPp": 0.9, "FPp": 0.0, "found": 1})
    # Global: A–P2 + B–P1 = 1.75 beats A–P1 + B–P2 = 1.61; both found. TPp = (12/20 + 18/18) / 2.
    assert m[GLOBAL] == pytest.approx({"DC": (0.75 + 1) / 2, "FNo": 0.0, "TPp": 0.8, "FPp": 0.0, "found": 2})
    # Greedy follows the ground truth's order: B first takes P1, then A takes P2 (0.75): both found.
    swapped = challenge_measures([_sample((2, 20), (0, 20))], [pred])
    assert swapped[GREEDY]["found"] == 2 and swapped[GLOBAL] == m[GLOBAL]


def test_greedy_prediction_taken_by_a_poor_match_is_gone_for_later_cells():
    # GT A = [0, 20) (first), B = [10, 20); the one prediction is B exactly. Dice(A, P) = 2·10/30 = 2/3.
    # Greedy (as the official code): A takes P although 2/3 ≤ 0.7 (not found), so B has nothing: FNo 1.
    # Global gives P to B (Dice 1).
    m = challenge_measures([_sample((0, 20), (10, 20))], [_prediction((10, 20))])
    assert m[GREEDY]["found"] == 0 and m[GREEDY]["FNo"] == 1.0 and m[GREEDY]["DC"] is None
    assert m[GLOBAL] == pytest.approx({"DC": 1.0, "FNo": 0.5, "TPp": 1.0, "FPp": 0.0, "found": 1})


def test_a_prediction_touching_nothing_is_not_taken():
    # P1 = [30, 40) overlaps no cell (Dice 0 with A): greedy skips it, so A = [0, 10) still takes P2 = [0, 10).
    m = challenge_measures([_sample((0, 10))], [_prediction((30, 40), (0, 10))])
    assert m[GREEDY]["found"] == m[GLOBAL]["found"] == 1


def test_no_predictions_miss_every_cell():
    m = challenge_measures([_sample((0, 10), (20, 30))], [_prediction()])
    for name in CHALLENGE_MATCHINGS:
        assert m[name] == {"DC": None, "FNo": 1.0, "TPp": None, "FPp": None, "found": 0}


def test_low_scored_predictions_are_left_out():
    sample, perfect = _sample((0, 10)), _prediction((0, 10), scores=[0.3])
    assert challenge_measures([sample], [perfect])[GREEDY]["found"] == 0  # below the default 0.5
    assert challenge_measures([sample], [perfect], min_score=0.2)[GREEDY]["found"] == 1


def test_found_cells_are_pooled_over_images_not_averaged_per_image():
    # Image 1: GT [0, 10), prediction [2, 12): Dice 0.8, FPp 20/300. Image 2: two cells predicted exactly.
    # DC = (0.8 + 1 + 1) / 3 (per-image means would give 0.9); FPp = (1/15 + 0 + 0) / 3.
    m = challenge_measures(
        [_sample((0, 10)), _sample((0, 10), (20, 30))], [_prediction((2, 12)), _prediction((0, 10), (20, 30))]
    )
    assert m[GREEDY] == pytest.approx({"DC": 2.8 / 3, "FNo": 0.0, "TPp": 2.8 / 3, "FPp": 1 / 45, "found": 3})
    assert m["n_cells"] == 3


def test_unannotated_samples_are_skipped_and_bad_input_refused():
    unannotated = CellSample(image=np.zeros((10, WIDTH), np.uint8), nuclei=_strip(0, 5))
    m = challenge_measures([_sample((0, 10)), unannotated], [_prediction((0, 10)), _prediction((0, 5))])
    assert m["n_cells"] == 1 and m[GREEDY]["found"] == 1
    with pytest.raises(ValueError, match="no sample with per-cell annotations"):
        challenge_measures([unannotated], [_prediction()])
    with pytest.raises(ValueError, match="1 ground-truth samples but 2 predictions"):
        challenge_measures([_sample((0, 10))], [_prediction(), _prediction()])


def test_box_pruned_intersections_equal_dense_ones():
    # Overlapping generated cells against the same cells moved by (3, 5): every pair's count, computed
    # inside the pair's shared box only, must equal the full-image count.
    truth = generate_smear((128, 128), n_cells=6, seed=3).cells.cells
    stack = truth.to_stack()
    moved = np.zeros_like(stack)
    moved[:, 3:, 5:] = stack[:, :-3, :-5]
    predicted = Masks.from_stack(moved)[0]
    dense = np.einsum("ihw,jhw->ij", stack.astype(np.int64), predicted.to_stack().astype(np.int64))
    assert np.array_equal(mask_intersections(truth, predicted), dense)
    assert np.count_nonzero(dense) > len(truth)  # cells overlap: off-diagonal pairs are counted too


def test_evaluate_instances_reports_the_challenge_measures_per_matching(tmp_path, capsys):
    sample = generate_smear((256, 256), n_cells=4, seed=4)
    sample.name = "field"
    coco = write_coco([sample], tmp_path / "gt" / "coco.json")
    evaluate = ["evaluate", "instances", "--dataset", f"coco:{coco}", "--split", "all"]
    capsys.readouterr()
    assert main([*evaluate, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    challenge = result["challenge"]["cell"]
    assert 0.6 < result["nucleus_dice"] <= 1  # the kept nuclei's union against the true nucleus mask
    assert challenge["n_cells"] == len(sample.cells) and challenge["min_score"] == 0.5
    for name in CHALLENGE_MATCHINGS:
        m = challenge[name]
        assert m["FNo"] == pytest.approx(1 - m["found"] / challenge["n_cells"])
        assert m["found"] >= 1 and 0.7 < m["DC"] <= 1 and 0 < m["TPp"] <= 1 and 0 <= m["FPp"] < 1

    assert main(evaluate) == 0  # without --json: the same JSON on stdout, and a table on stderr
    printed = capsys.readouterr()
    assert json.loads(printed.out)["challenge"]["cell"] == challenge
    table = printed.err.splitlines()[-3:]
    assert table[0].split()[:4] == ["matching", "DC", "FNo", "TPp"]
    assert table[1].startswith(GREEDY) and table[2].startswith(GLOBAL)
    assert table[1].split()[-1] == f"{challenge[GREEDY]['found']}/{challenge['n_cells']}"

    assert main([*evaluate, "--challenge-score-threshold", "0.01"]) == 2  # below --score-threshold 0.05
    assert "below score_threshold" in capsys.readouterr().err
