import numpy as np
import pytest

from napari_cervix.classes import (
    HERLEV_ABNORMAL,
    HERLEV_CLASSES,
    HERLEV_NORMAL,
    INSTANCE_CLASSES,
    SEMANTIC_CLASSES,
    to_bethesda,
)
from napari_cervix.io.sample import CellSample
from napari_cervix.metrics import (
    COCO_MAX_DETS,
    PixelConfusion,
    classification_metrics,
    coco_segm_metrics,
    pixel_metrics,
)

# ----------------------------------------------------------------------------- pixel metrics

PRED = np.array([[0, 1], [1, 2]])
TARGET = np.array([[0, 1], [2, 2]])


def test_pixel_metrics_hand_computed():
    # Confusion (rows = target): bg→bg 1; cyto→cyto 1; nucleus→cyto 1, nucleus→nucleus 1.
    m = pixel_metrics(PRED, TARGET)
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["iou"] == pytest.approx({"background": 1.0, "cytoplasm": 1 / 2, "nucleus": 1 / 2})
    assert m["dice"] == pytest.approx({"background": 1.0, "cytoplasm": 2 / 3, "nucleus": 2 / 3})
    assert m["precision"] == pytest.approx({"background": 1.0, "cytoplasm": 1 / 2, "nucleus": 1.0})
    assert m["recall"] == pytest.approx({"background": 1.0, "cytoplasm": 1.0, "nucleus": 1 / 2})
    assert m["MPA"] == pytest.approx((1 + 1 + 1 / 2) / 3)
    assert m["mIoU"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)


def test_confusion_accumulates_pixels_not_image_scores():
    confusion = PixelConfusion(3)
    confusion.update(PRED, TARGET)
    confusion.update(np.zeros((1, 4), int), np.array([[0, 0, 0, 1]]))
    assert confusion.matrix.tolist() == [[4, 0, 0], [1, 1, 0], [0, 1, 1]]
    joined = pixel_metrics(
        np.concatenate([PRED.ravel(), np.zeros(4, int)]), np.concatenate([TARGET.ravel(), [0, 0, 0, 1]])
    )
    assert confusion.result(SEMANTIC_CLASSES) == joined  # same counts → identical numbers
    confusion.reset()
    assert confusion.matrix.sum() == 0


def test_class_absent_everywhere_is_none_and_left_out_of_means():
    m = pixel_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert m["iou"]["nucleus"] is None and m["dice"]["nucleus"] is None
    assert m["precision"]["nucleus"] is None and m["recall"]["nucleus"] is None
    # bg: tp1 fp1 fn0 → IoU 1/2; cyto: tp2 fp0 fn1 → IoU 2/3.
    assert m["mIoU"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["MPA"] == pytest.approx((1 + 2 / 3) / 2)


def test_class_predicted_but_absent_from_target_counts_against_miou_not_mpa():
    m = pixel_metrics(np.array([0, 2]), np.array([0, 0]))
    assert m["iou"]["nucleus"] == 0.0 and m["precision"]["nucleus"] == 0.0
    assert m["recall"]["nucleus"] is None
    assert m["recall"]["cytoplasm"] is None and m["iou"]["cytoplasm"] is None
    assert m["mIoU"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["MPA"] == pytest.approx(1 / 2)  # background recall only


def test_ignore_index_skips_unannotated_target_pixels():
    m = pixel_metrics(np.array([0, 1, 2]), np.array([0, 255, 2]), ignore_index=255)
    assert m["accuracy"] == 1.0 and m["iou"]["cytoplasm"] is None


def test_pixel_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="shape"):
        pixel_metrics(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="only 0..2 exist"):
        pixel_metrics(np.full((2, 2), 3), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="argmax"):
        pixel_metrics(np.full((2, 2), 0.3), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="class names"):
        PixelConfusion(3).result(["a", "b"])


# ----------------------------------------------------------------------------- COCO instance AP


def _square(shape, y, x, size):
    mask = np.zeros(shape, bool)
    mask[y : y + size, x : x + size] = True
    return mask


def _two_cell_sample():
    shape = (100, 100)
    cells = np.stack([_square(shape, 5, 5, 40), _square(shape, 55, 50, 40)])  # 1600 px: medium
    nuclei = _square(shape, 20, 20, 5) | _square(shape, 70, 65, 5)  # 25 px: small
    return CellSample(image=np.zeros(shape, np.uint8), cells=cells, nuclei=nuclei, name="two")


def _perfect_prediction(sample):
    nuclei = [_square(sample.shape, 20, 20, 5), _square(sample.shape, 70, 65, 5)]
    masks = np.stack([*sample.cells.to_stack(), *nuclei])
    return {"masks": masks, "scores": np.array([0.9, 0.8, 0.7, 0.6]), "labels": ["cell", "cell", "nucleus", "nucleus"]}


def test_perfect_instances_give_ap_one():
    sample = _two_cell_sample()
    m = coco_segm_metrics([sample], [_perfect_prediction(sample)])
    for block in (m["segm"], m["per_category"]["cell"], m["per_category"]["nucleus"]):
        assert block["AP"] == pytest.approx(1.0)
        assert block["AP50"] == pytest.approx(1.0) and block["AP75"] == pytest.approx(1.0)
        assert block["AP_L"] is None  # no object above 96² px: COCO's -1 becomes None
    assert m["per_category"]["cell"]["AP_M"] == pytest.approx(1.0)
    assert m["per_category"]["cell"]["AP_S"] is None
    assert m["per_category"]["nucleus"]["AP_S"] == pytest.approx(1.0)


def test_a_cell_set_prediction_scores_as_its_dense_masks():
    from napari_cervix.cellset import CellSet

    sample = _two_cell_sample()
    dense = _perfect_prediction(sample)
    dense["masks"][:2] = np.roll(dense["masks"][:2], 3, axis=1)  # imperfect, so the figures say something
    sparse = CellSet.from_stack(dense["masks"][:2], dense["scores"][:2], dense["masks"][2:], dense["scores"][2:])
    assert coco_segm_metrics([sample], [sparse]) == coco_segm_metrics([sample], [dense])
    with pytest.raises(ValueError, match="image"):
        coco_segm_metrics([sample], [CellSet.from_stack(np.zeros((0, 10, 10)), shape=(10, 10))])


def test_shifted_cells_lose_the_strict_iou_thresholds():
    sample = _two_cell_sample()
    pred = _perfect_prediction(sample)
    pred["masks"][:2] = np.roll(pred["masks"][:2], 4, axis=2)
    # IoU of a 40×40 square shifted by 4 px: 36·40 / (2·1600 − 1440) = 0.818 → a match at the 7
    # thresholds 0.50 … 0.80 and a miss at 0.85, 0.90, 0.95.
    m = coco_segm_metrics([sample], [pred])
    assert m["per_category"]["cell"]["AP"] == pytest.approx(0.7)
    assert m["per_category"]["cell"]["AP50"] == pytest.approx(1.0)
    assert m["per_category"]["cell"]["AP75"] == pytest.approx(1.0)
    assert m["per_category"]["nucleus"]["AP"] == pytest.approx(1.0)
    assert m["segm"]["AP"] == pytest.approx((0.7 + 1.0) / 2)


def test_higher_scored_false_positive_halves_ap():
    shape = (50, 50)
    sample = CellSample(image=np.zeros(shape), cells=_square(shape, 0, 0, 20)[None], nuclei=None)
    pred = {
        "masks": np.stack([_square(shape, 30, 30, 15), _square(shape, 0, 0, 20)]),
        "scores": [0.9, 0.5],
        "labels": ["cell", "cell"],
    }
    # Ranked FP then TP: precision at recall 1 is 1/2 at every IoU threshold.
    assert coco_segm_metrics([sample], [pred])["segm"]["AP"] == pytest.approx(0.5)
    pred["scores"] = [0.1, 0.5]  # TP first: precision stays 1 up to full recall
    assert coco_segm_metrics([sample], [pred])["segm"]["AP"] == pytest.approx(1.0)


def test_more_than_100_cells_per_image_are_all_counted():
    assert COCO_MAX_DETS[-1] >= 300
    shape = (8 * 13, 8 * 13)
    cells = np.stack([_square(shape, 8 * i, 8 * j, 5) for i in range(13) for j in range(13)])
    sample = CellSample(image=np.zeros(shape), cells=cells, nuclei=None)
    pred = {"masks": cells, "scores": np.linspace(1, 0.5, len(cells)), "labels": ["cell"] * len(cells)}
    m = coco_segm_metrics([sample], [pred])
    # With COCO's default limit of 100 detections, 69 of the 169 cells would count as missed.
    assert m["segm"]["AP"] == pytest.approx(1.0)


def test_unannotated_category_predictions_are_dropped_and_scored_none():
    shape = (40, 40)
    sample = CellSample(image=np.zeros(shape), cells=_square(shape, 5, 5, 10)[None], nuclei=None)
    pred = {
        "masks": np.stack([_square(shape, 5, 5, 10), _square(shape, 30, 30, 5)]),
        "scores": [0.5, 0.9],
        "labels": ["cell", "nucleus"],
    }
    m = coco_segm_metrics([sample], [pred])
    assert m["per_category"]["cell"]["AP"] == pytest.approx(1.0)
    assert m["per_category"]["nucleus"]["AP"] is None
    assert m["segm"]["AP"] == pytest.approx(1.0)


def test_no_predictions_score_zero():
    sample = _two_cell_sample()
    empty = {"masks": np.zeros((0, 100, 100), bool), "scores": [], "labels": []}
    m = coco_segm_metrics([sample], [empty])
    assert m["segm"]["AP"] == 0.0 and m["per_category"]["nucleus"]["AP"] == 0.0


def test_touching_nuclei_diagonally_are_one_instance():
    shape = (20, 20)
    nuclei = np.zeros(shape, bool)
    nuclei[5, 5] = nuclei[6, 6] = True  # 8-connected: one nucleus
    sample = CellSample(image=np.zeros(shape), cells=None, nuclei=nuclei)
    pred = {"masks": nuclei[None], "scores": [1.0], "labels": ["nucleus"]}
    m = coco_segm_metrics([sample], [pred])
    assert m["per_category"]["nucleus"]["AP"] == pytest.approx(1.0)


def test_coco_metrics_reject_bad_input():
    sample = _two_cell_sample()
    good = _perfect_prediction(sample)
    with pytest.raises(ValueError, match="1 ground-truth samples but 2"):
        coco_segm_metrics([sample], [good, good])
    with pytest.raises(ValueError, match="unknown labels"):
        coco_segm_metrics([sample], [{**good, "labels": ["cell", "cell", "dog", "nucleus"]}])
    with pytest.raises(ValueError, match="match its image"):
        coco_segm_metrics([sample], [{**good, "masks": good["masks"][:, :50]}])
    with pytest.raises(ValueError, match="equally many"):
        coco_segm_metrics([sample], [{**good, "scores": [1.0]}])
    assert INSTANCE_CLASSES == ("cell", "nucleus")


# ----------------------------------------------------------------------------- classification


def test_classification_metrics_hand_computed():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    proba = np.array(
        [[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.5, 0.3, 0.2], [0.1, 0.4, 0.5], [0.2, 0.3, 0.5]]
    )
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"], proba=proba, positive_classes=["b", "c"])
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 4 / 5, "specificity": 1.0, "support": 3}
    )
    assert m["per_class"]["b"] == pytest.approx(
        {"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "specificity": 3 / 4, "support": 2}
    )
    assert m["per_class"]["c"] == pytest.approx(
        {"precision": 1 / 2, "recall": 1.0, "f1": 2 / 3, "specificity": 4 / 5, "support": 1}
    )
    assert m["macro"]["recall"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["macro"]["specificity"] == pytest.approx((1 + 3 / 4 + 4 / 5) / 3)
    binary = m["binary"]
    # Binary: true [0,0,0,1,1,1], predicted [0,0,1,1,1,1] → TP 3, TN 2, FP 1, FN 0.
    assert binary["confusion_matrix"] == [[2, 1], [0, 3]]
    assert binary["sensitivity"] == binary["recall_abnormal"] == 1.0
    assert binary["specificity"] == pytest.approx(2 / 3)
    assert binary["accuracy"] == pytest.approx(5 / 6)
    # Abnormal scores (b + c): negatives 0.1, 0.2, 0.6; positives 0.5, 0.9, 0.8
    # → 8 of the 9 (positive, negative) pairs are ranked correctly.
    assert binary["auc"] == pytest.approx(8 / 9)


def test_classification_accepts_indices_and_handles_single_group():
    m = classification_metrics([0, 0], [0, 1], ["x", "y"], proba=[[0.9, 0.1], [0.4, 0.6]], positive_classes=["y"])
    assert m["per_class"]["y"]["recall"] is None  # no true "y": undefined, not 0
    assert m["per_class"]["y"]["precision"] == 0.0
    assert m["binary"]["auc"] is None and m["binary"]["sensitivity"] is None
    assert m["binary"]["specificity"] == pytest.approx(1 / 2)


def test_classification_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown classes"):
        classification_metrics(["a"], ["z"], ["a", "b"])
    with pytest.raises(ValueError, match="2 true labels but 1"):
        classification_metrics(["a", "b"], ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="proba must be"):
        classification_metrics(["a"], ["a"], ["a", "b"], proba=[[1.0]])
    with pytest.raises(ValueError, match="some, but not all"):
        classification_metrics(["a"], ["a"], ["a", "b"], positive_classes=["a", "b"])


def test_herlev_vocabularies():
    assert len(HERLEV_CLASSES) == 7 and HERLEV_CLASSES[0] == "normal_superficiel"
    assert set(HERLEV_NORMAL) | set(HERLEV_ABNORMAL) == set(HERLEV_CLASSES)
    assert HERLEV_ABNORMAL == ("light_dysplastic", "moderate_dysplastic", "severe_dysplastic", "carcinoma_in_situ")
    assert [to_bethesda(c) for c in HERLEV_CLASSES] == ["benign"] * 3 + ["L-SIL"] + ["H-SIL"] * 3
    with pytest.raises(ValueError, match="unknown Herlev class"):
        to_bethesda("normal")
    y_true = list(HERLEV_CLASSES)
    m = classification_metrics(y_true, y_true, HERLEV_CLASSES, positive_classes=HERLEV_ABNORMAL)
    assert m["binary"]["confusion_matrix"] == [[3, 0], [0, 4]]
