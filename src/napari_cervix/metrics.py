"""Evaluation metrics: semantic (pixel), instance (COCO mask AP, the ISBI 2014/2015 challenge's per-cell
measures) and cell classification.

Every ratio is returned as a fraction in [0, 1]. A ratio whose denominator is zero is *undefined*
and returned as ``None`` (JSON ``null``), never as 0 or NaN; averages ("MPA", "mIoU", macro means)
are taken over the defined values only. Consequences for pixel metrics:

* a class absent from both prediction and target has every per-class value ``None`` and is left
  out of every mean (an empty class says nothing about the model);
* a class predicted but absent from the target has IoU/Dice/precision 0 (it counts against mIoU)
  and recall ``None`` (there was nothing to find, so it is left out of MPA);
* a class present in the target but never predicted has IoU/Dice/recall 0 and precision ``None``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from .cellset import CellSet, Masks
from .classes import INSTANCE_CLASSES, SEMANTIC_CLASSES
from .geometry import label_components
from .io.sample import CellSample


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator > 0 else None


def _mean_defined(values) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


# --------------------------------------------------------------------------------------------------
# Pixel (semantic) metrics
# --------------------------------------------------------------------------------------------------


class PixelConfusion:
    """Pixel confusion matrix accumulated image by image (rows = target class, columns = predicted).

    Accumulating counts, not per-image scores, gives dataset-level metrics in which every pixel
    weighs the same, however the images are sized.
    Target pixels equal to ``ignore_index`` (e.g. 255 for "unannotated") are skipped.
    """

    def __init__(self, n_classes: int, ignore_index: int | None = None):
        if int(n_classes) < 1:
            raise ValueError(f"n_classes must be at least 1, got {n_classes}")
        self.n_classes = int(n_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.n_classes, self.n_classes), np.int64)

    def _as_labels(self, array, what: str) -> np.ndarray:
        array = np.asarray(array)
        if array.dtype == bool:
            array = array.astype(np.int64)
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise ValueError(f"{what} must hold integer class indices, got dtype {array.dtype}")
        if np.issubdtype(array.dtype, np.floating) and (
            not np.all(np.isfinite(array)) or np.any(array != np.round(array))
        ):
            raise ValueError(
                f"{what} must hold integer class indices; got non-integer floats "
                "(pass argmax of the probabilities, not the probabilities)"
            )
        return array.astype(np.int64, copy=False)

    def update(self, pred, target) -> PixelConfusion:
        """Add one prediction/target pair of H×W (or any equal-shape) class-index arrays."""
        pred = self._as_labels(pred, "pred")
        target = self._as_labels(target, "target")
        if pred.shape != target.shape:
            raise ValueError(f"pred has shape {pred.shape} but target has shape {target.shape}")
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            pred, target = pred[keep], target[keep]
        for array, what in ((pred, "pred"), (target, "target")):
            if array.size and (array.min() < 0 or array.max() >= self.n_classes):
                raise ValueError(
                    f"{what} has class values in [{array.min()}, {array.max()}] but only "
                    f"0..{self.n_classes - 1} exist ({self.n_classes} classes)"
                )
        counts = np.bincount((target.ravel() * self.n_classes + pred.ravel()), minlength=self.n_classes**2)
        self.matrix += counts.reshape(self.n_classes, self.n_classes)
        return self

    def reset(self) -> None:
        self.matrix[:] = 0

    def result(self, class_names: Sequence[str] | None = None) -> dict:
        """``{"MPA", "mIoU", "accuracy", "dice", "precision", "recall", "iou"}`` (see module doc).

        MPA (mean pixel accuracy) is the mean per-class recall over classes present in the target;
        mIoU the mean IoU over classes present in target or prediction; Dice is the Zijdenbos
        similarity index 2·TP / (2·TP + FP + FN).
        """
        if class_names is None:
            class_names = [str(i) for i in range(self.n_classes)]
        names = list(class_names)
        if len(names) != self.n_classes:
            raise ValueError(f"{len(names)} class names given for {self.n_classes} classes")
        m = self.matrix
        tp = np.diag(m).astype(np.float64)
        fp = m.sum(axis=0) - tp
        fn = m.sum(axis=1) - tp
        iou = [_ratio(tp[c], tp[c] + fp[c] + fn[c]) for c in range(self.n_classes)]
        dice = [_ratio(2 * tp[c], 2 * tp[c] + fp[c] + fn[c]) for c in range(self.n_classes)]
        precision = [_ratio(tp[c], tp[c] + fp[c]) for c in range(self.n_classes)]
        recall = [_ratio(tp[c], tp[c] + fn[c]) for c in range(self.n_classes)]
        return {
            "MPA": _mean_defined(recall),
            "mIoU": _mean_defined(iou),
            "accuracy": _ratio(tp.sum(), m.sum()),
            "dice": dict(zip(names, dice)),
            "precision": dict(zip(names, precision)),
            "recall": dict(zip(names, recall)),
            "iou": dict(zip(names, iou)),
        }


def pixel_metrics(pred, target, class_names: Sequence[str] = SEMANTIC_CLASSES, ignore_index: int | None = None) -> dict:
    """Pixel metrics of one prediction/target pair; see :meth:`PixelConfusion.result`."""
    confusion = PixelConfusion(len(class_names), ignore_index=ignore_index)
    return confusion.update(pred, target).result(class_names)


# --------------------------------------------------------------------------------------------------
# Instance metrics (COCO mask AP via pycocotools)
# --------------------------------------------------------------------------------------------------

#: COCO's detections-per-image limits, with the last raised from 100 to 300: a real smear frame can
#: hold more than 100 cells, and with the default limit the surplus would count as missed.
COCO_MAX_DETS = (1, 10, 300)
_AP_KEYS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L")


def _coco_annotations(masks: Masks, image_id: int, category_id: int, first_id: int, scored: bool) -> list[dict]:
    """COCO annotations of sparse masks, RLE computed per object from its crop (never an H×W array)."""
    from pycocotools import mask as mask_utils

    annotations = []
    for k, rle in enumerate(masks.rle()):
        annotation = {
            "id": first_id + k,
            "image_id": image_id,
            "category_id": category_id,
            "segmentation": rle,
            "area": float(mask_utils.area(rle)),
            "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "iscrowd": 0,
        }
        if scored:
            annotation["score"] = float(masks.scores[k])
        annotations.append(annotation)
    return annotations


def _nucleus_instances(nuclei: np.ndarray) -> Masks:
    """Nuclei of a union mask: its 8-connected components (:func:`~napari_cervix.geometry.label_components`)."""
    return Masks.from_labels(label_components(nuclei))[0]


def _prediction_masks(pred, index: int, shape: tuple[int, int]) -> dict[str, Masks]:
    """{"cell": Masks, "nucleus": Masks} of one prediction: a :class:`~napari_cervix.cellset.CellSet`, or
    ``{"masks": N×H×W, "scores", "labels"}`` with labels "cell"/"nucleus" (cropped here)."""
    if isinstance(pred, CellSet):
        if pred.shape != tuple(shape):
            raise ValueError(f"prediction {index} is on a {pred.shape} image, its sample is {tuple(shape)}")
        return {"cell": pred.cells, "nucleus": pred.nuclei}
    if not isinstance(pred, dict) or not {"masks", "scores", "labels"} <= set(pred):
        raise ValueError(f"prediction {index} must be a CellSet or a dict with 'masks', 'scores' and 'labels'")
    masks = np.asarray(pred["masks"])
    scores = np.asarray(pred["scores"], np.float64).ravel()
    labels = np.array([str(lab) for lab in np.asarray(pred["labels"]).ravel()], dtype=object)
    n = len(scores)
    if masks.size == 0 and n == 0:
        masks = np.zeros((0, *shape), bool)
    if masks.ndim != 3 or masks.shape[1:] != tuple(shape):
        raise ValueError(
            f"prediction {index}: masks must be N×{shape[0]}×{shape[1]} to match its image, got shape {masks.shape}"
        )
    if not (masks.shape[0] == n == len(labels)):
        raise ValueError(
            f"prediction {index}: {masks.shape[0]} masks, {n} scores and {len(labels)} labels; "
            "they must be equally many"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"prediction {index}: scores must be finite")
    unknown = sorted(set(labels) - set(INSTANCE_CLASSES))
    if unknown:
        raise ValueError(f"prediction {index}: unknown labels {unknown}; expected {', '.join(INSTANCE_CLASSES)}")
    return {
        name: Masks.from_stack(masks[labels == name], shape, scores[labels == name])[0] for name in INSTANCE_CLASSES
    }


def coco_segm_metrics(gt_samples: Sequence[CellSample], predictions: Sequence[dict]) -> dict:
    """COCO mask AP of instance predictions against the samples' ground truth.

    Ground truth: category ``cell`` from ``sample.cells`` (a cell set), ``nucleus`` from the
    8-connected components of ``sample.nuclei``. A sample whose ``cells`` (or ``nuclei``) is ``None``
    is *not annotated* for that category, so predictions of that category on it are dropped rather
    than counted as false positives; an empty cell set means "annotated, none there".

    Each prediction is a :class:`~napari_cervix.cellset.CellSet` with scores (what
    :meth:`InstanceResult.to_predictions` gives), or ``{"masks": N×H×W bool, "scores": (N,), "labels":
    (N,) "cell"/"nucleus"}``; one per sample, in the same order. Every mask is RLE-encoded from its crop,
    so memory follows the objects, not objects × pixels.

    Returns ``{"segm": {AP, AP50, AP75, AP_S, AP_M, AP_L}, "per_category": {"cell": {...},
    "nucleus": {...}}}`` with COCO's definitions (AP averaged over IoU 0.50:0.05:0.95, 101-point
    interpolated precision, area ranges small < 32² ≤ medium < 96² ≤ large pixels) at up to
    ``COCO_MAX_DETS[-1]`` detections per image. Values are read straight from the accumulated
    precision array because ``COCOeval.summarize`` hard-codes maxDets=100 for its first statistic.
    A value COCO reports as -1 (no ground-truth objects of that kind) is ``None``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(gt_samples) != len(predictions):
        raise ValueError(f"{len(gt_samples)} ground-truth samples but {len(predictions)} predictions")
    if not len(gt_samples):
        raise ValueError("no samples to evaluate")
    category_ids = {name: i + 1 for i, name in enumerate(INSTANCE_CLASSES)}
    images, gt_annotations, dt_annotations = [], [], []
    for index, (sample, pred) in enumerate(zip(gt_samples, predictions)):
        height, width = sample.shape
        image_id = index + 1
        images.append({"id": image_id, "height": height, "width": width})
        predicted = _prediction_masks(pred, index, (height, width))
        annotated = {"cell": sample.cells is not None, "nucleus": sample.nuclei is not None}
        if not any(annotated.values()):
            raise ValueError(f"sample {index} ({sample.name or 'unnamed'}) has neither cells nor nuclei")
        truth = {
            "cell": sample.cells.cells if annotated["cell"] else Masks((height, width)),
            "nucleus": _nucleus_instances(sample.nuclei) if annotated["nucleus"] else Masks((height, width)),
        }
        for name, masks in truth.items():
            if masks.shape != (height, width):
                raise ValueError(f"sample {index}: {name} masks are {masks.shape}, the image is {(height, width)}")
            gt_annotations += _coco_annotations(
                masks, image_id, category_ids[name], len(gt_annotations) + 1, scored=False
            )
        for name, masks in predicted.items():
            if annotated[name]:
                dt_annotations += _coco_annotations(
                    masks, image_id, category_ids[name], len(dt_annotations) + 1, scored=True
                )

    categories = [{"id": i, "name": name} for name, i in category_ids.items()]

    def make_coco(annotations):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
        coco.createIndex()
        return coco

    # pycocotools reports progress with print(); keep it off the caller's stdout (JSON CLIs).
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt, coco_dt = make_coco(gt_annotations), make_coco(dt_annotations)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        evaluator.params.maxDets = list(COCO_MAX_DETS)
        evaluator.params.catIds = [category_ids[name] for name in INSTANCE_CLASSES]
        evaluator.evaluate()
        evaluator.accumulate()
    # Indexed [IoU threshold, recall point, category, area range, maxDets]; -1 = no such objects.
    precision = evaluator.eval["precision"]
    iou_thresholds = evaluator.params.iouThrs
    area_index = {label: i for i, label in enumerate(evaluator.params.areaRngLbl)}

    def ap_block(category_slice) -> dict:
        def mean_ap(iou=None, area="all"):
            values = precision[:, :, category_slice, area_index[area], -1]
            if iou is not None:
                values = values[np.flatnonzero(np.isclose(iou_thresholds, iou))]
            values = values[values > -1]
            return float(values.mean()) if values.size else None

        return {
            "AP": mean_ap(),
            "AP50": mean_ap(0.5),
            "AP75": mean_ap(0.75),
            "AP_S": mean_ap(area="small"),
            "AP_M": mean_ap(area="medium"),
            "AP_L": mean_ap(area="large"),
        }

    return {
        "segm": ap_block(slice(None)),
        "per_category": {name: ap_block(slice(k, k + 1)) for k, name in enumerate(INSTANCE_CLASSES)},
    }


# --------------------------------------------------------------------------------------------------
# ISBI 2014/2015 overlapping-cell challenge measures (DC, FNo, TPp, FPp)
# --------------------------------------------------------------------------------------------------

#: A ground-truth cell is *found* ("good segmentation") when its matched prediction has Dice above this.
CHALLENGE_DICE_THRESHOLD = 0.7
#: The matchings :func:`challenge_measures` reports, by the names the reports use.
CHALLENGE_MATCHINGS = ("greedy (official)", "global")


def mask_intersections(truth: Masks, predicted: Masks) -> np.ndarray:
    """G×P pixel counts of truth ∩ prediction, computed only for pairs whose boxes overlap (cells are
    sparse: most pairs share no box, and their count is 0 without touching a pixel)."""
    counts = np.zeros((len(truth), len(predicted)), np.int64)
    if not counts.size:
        return counts
    t, p = truth.boxes[:, None, :], predicted.boxes[None, :, :]
    y0, x0 = np.maximum(t[..., 0], p[..., 0]), np.maximum(t[..., 1], p[..., 1])
    y1, x1 = np.minimum(t[..., 2], p[..., 2]), np.minimum(t[..., 3], p[..., 3])
    for i, j in zip(*np.nonzero((y1 > y0) & (x1 > x0))):
        box = (y0[i, j], x0[i, j], y1[i, j], x1[i, j])
        counts[i, j] = np.count_nonzero(truth.crop_in(i, box) & predicted.crop_in(j, box))
    return counts


def _greedy_official_matches(dice: np.ndarray) -> np.ndarray:
    """Prediction index per ground-truth cell (-1: none), as the challenge's ``evaluateCytoSegmentation.m``
    matches: ground-truth cells in their order, each takes the prediction of highest overlap among those
    no earlier cell took (the first on a tie; none when every overlap is 0). A prediction once taken is
    gone for later cells even when its Dice is too low to count as found. (The official code ranks by
    Jaccard; Dice = 2J/(1+J) ranks the same.)"""
    matches = np.full(dice.shape[0], -1, np.int64)
    free = np.ones(dice.shape[1], bool)
    for i, row in enumerate(dice):
        candidates = np.flatnonzero(free)
        if not len(candidates) or row[candidates].max() == 0:
            continue
        matches[i] = candidates[np.argmax(row[candidates])]
        free[matches[i]] = False
    return matches


def _global_matches(dice: np.ndarray) -> np.ndarray:
    """Prediction index per ground-truth cell (-1: none) of the one-to-one assignment of largest total Dice."""
    from scipy.optimize import linear_sum_assignment

    matches = np.full(dice.shape[0], -1, np.int64)
    rows, cols = linear_sum_assignment(dice, maximize=True)
    matches[rows] = cols
    return matches


def challenge_measures(gt_samples: Sequence[CellSample], predictions: Sequence, min_score: float = 0.5) -> dict:
    """The ISBI 2014/2015 overlapping cervical cell challenge's per-cell measures of predicted cells.

    Definitions are those of the challenge's evaluation code (``evaluateCytoSegmentation.m`` and
    ``SegEvaluateJIDiceTPRFPR.m``, version 0.10 of 2 January 2014, as used in Lu et al., IEEE TIP 24(4)
    2015 and IEEE JBHI 2016; evaluation page: cs.adelaide.edu.au/~carneiro/isbi14_challenge/evaluation.html).
    Each ground-truth cell G is matched to at most one predicted cell S; it is **found** when
    Dice(S, G) = 2|S∩G| / (|S| + |G|) > 0.7 (:data:`CHALLENGE_DICE_THRESHOLD`). Then, pooled over the
    found cells of every image:

    * ``DC``  mean Dice;
    * ``TPp`` mean pixel true-positive rate |S∩G| / |G|;
    * ``FPp`` mean pixel false-positive rate |S \\ G| / (H·W − |G|), i.e. FP / (FP + TN) over the image
      (hence the small values the literature reports);

    and ``FNo`` = share of ground-truth cells not found (over every image's cells). ``found`` counts the
    found cells, ``n_cells`` the ground-truth ones. Undefined values (no found cell, no ground truth) are
    ``None``.

    Two matchings are reported, each under its name in :data:`CHALLENGE_MATCHINGS`:

    * ``"greedy (official)"`` — the official code's: ground-truth cells in order, each taking the
      best-overlapping prediction no earlier cell took (see :func:`_greedy_official_matches`);
    * ``"global"`` — the one-to-one assignment maximizing total Dice (Hungarian,
      ``scipy.optimize.linear_sum_assignment``); assigned pairs with Dice ≤ 0.7 are not found.

    The challenge scores a final segmentation, not a ranked list, so predicted cells scoring below
    ``min_score`` (0.5, ``segment instances``' default) are left out. ``gt_samples`` and ``predictions``
    are as in :func:`coco_segm_metrics`; samples without per-cell annotation (``cells`` None) are skipped.
    """
    if len(gt_samples) != len(predictions):
        raise ValueError(f"{len(gt_samples)} ground-truth samples but {len(predictions)} predictions")
    matchers = dict(zip(CHALLENGE_MATCHINGS, (_greedy_official_matches, _global_matches)))
    found = {name: {"DC": [], "TPp": [], "FPp": []} for name in matchers}
    n_cells, n_annotated = 0, 0
    for index, (sample, pred) in enumerate(zip(gt_samples, predictions)):
        if sample.cells is None:
            continue
        n_annotated += 1
        truth = sample.cells.cells
        predicted = _prediction_masks(pred, index, sample.shape)["cell"]
        predicted = predicted.subset(predicted.scores >= min_score)
        overlap = mask_intersections(truth, predicted).astype(np.float64)
        gt_area, pred_area = truth.areas[:, None], predicted.areas[None, :]
        dice = 2 * overlap / (gt_area + pred_area)
        tpr = overlap / gt_area
        fpr = (pred_area - overlap) / (truth.shape[0] * truth.shape[1] - gt_area)
        n_cells += len(truth)
        for name, matcher in matchers.items():
            matches = matcher(dice)
            rows = np.flatnonzero(matches >= 0)
            rows = rows[dice[rows, matches[rows]] > CHALLENGE_DICE_THRESHOLD]
            for key, values in (("DC", dice), ("TPp", tpr), ("FPp", fpr)):
                found[name][key] += values[rows, matches[rows]].tolist()
    if not n_annotated:
        raise ValueError("no sample with per-cell annotations to score")
    result = {"n_cells": n_cells, "dice_threshold": CHALLENGE_DICE_THRESHOLD, "min_score": float(min_score)}
    for name, values in found.items():
        result[name] = {
            "DC": _mean_defined(values["DC"]),
            "FNo": _ratio(n_cells - len(values["DC"]), n_cells),
            "TPp": _mean_defined(values["TPp"]),
            "FPp": _mean_defined(values["FPp"]),
            "found": len(values["DC"]),
        }
    return result


# --------------------------------------------------------------------------------------------------
# Classification metrics
# --------------------------------------------------------------------------------------------------


def _class_indices(values, class_names: Sequence[str], what: str) -> np.ndarray:
    """Class names or integer indices → indices into ``class_names``."""
    values = np.asarray(values).ravel()
    if values.size and np.issubdtype(values.dtype, np.integer):
        if values.min() < 0 or values.max() >= len(class_names):
            raise ValueError(f"{what} has class indices outside 0..{len(class_names) - 1}")
        return values.astype(np.int64)
    lookup = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({str(v) for v in values} - set(lookup))
    if unknown:
        raise ValueError(f"{what} has unknown classes {unknown}; expected {', '.join(class_names)}")
    return np.array([lookup[str(v)] for v in values], np.int64)


def classification_metrics(
    y_true, y_pred, class_names: Sequence[str], proba=None, positive_classes: Sequence[str] | None = None
) -> dict:
    """Per-cell classification metrics.

    ``y_true``/``y_pred``: class names or indices into ``class_names``. ``proba``: optional N×K
    class probabilities (columns in ``class_names`` order), used for the binary AUC.

    Returns ``accuracy``; ``per_class`` {name: {precision, recall, f1, specificity, support}};
    ``macro`` means of those four over defined values; ``confusion_matrix`` (list of lists, rows =
    true class, columns = predicted); ``class_names``. With ``positive_classes`` (e.g.
    :data:`~napari_cervix.classes.HERLEV_ABNORMAL`) also ``binary``: ``sensitivity`` (alias
    ``recall_abnormal``), ``specificity``, ``accuracy``, ``confusion_matrix`` [[TN, FP], [FN, TP]]
    and ``auc`` — ROC AUC of the summed positive-class probabilities, ``None`` without ``proba`` or
    when the true labels hold only one of the two groups.
    """
    from sklearn.metrics import confusion_matrix, roc_auc_score

    class_names = list(class_names)
    if len(set(class_names)) != len(class_names) or not class_names:
        raise ValueError("class_names must be a non-empty list of distinct names")
    true = _class_indices(y_true, class_names, "y_true")
    pred = _class_indices(y_pred, class_names, "y_pred")
    if true.shape != pred.shape:
        raise ValueError(f"{true.size} true labels but {pred.size} predictions")
    if not true.size:
        raise ValueError("no labels to evaluate")
    k = len(class_names)
    matrix = confusion_matrix(true, pred, labels=list(range(k)))
    tp = np.diag(matrix).astype(np.float64)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    tn = matrix.sum() - tp - fp - fn
    per_class = {}
    for c, name in enumerate(class_names):
        per_class[name] = {
            "precision": _ratio(tp[c], tp[c] + fp[c]),
            "recall": _ratio(tp[c], tp[c] + fn[c]),
            "f1": _ratio(2 * tp[c], 2 * tp[c] + fp[c] + fn[c]),
            "specificity": _ratio(tn[c], tn[c] + fp[c]),
            "support": int(tp[c] + fn[c]),
        }
    result = {
        "accuracy": _ratio(tp.sum(), matrix.sum()),
        "per_class": per_class,
        "macro": {
            key: _mean_defined(stats[key] for stats in per_class.values())
            for key in ("precision", "recall", "f1", "specificity")
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": class_names,
    }

    if proba is not None:
        proba = np.asarray(proba, np.float64)
        if proba.shape != (true.size, k):
            raise ValueError(f"proba must be N×K = {true.size}×{k}, got shape {proba.shape}")
        if not np.all(np.isfinite(proba)):
            raise ValueError("proba has NaN or infinite values")

    if positive_classes is not None:
        positive = _class_indices(list(positive_classes), class_names, "positive_classes")
        if not positive.size or positive.size == k:
            raise ValueError("positive_classes must name some, but not all, of class_names")
        is_positive = np.isin(np.arange(k), positive)
        true_bin, pred_bin = is_positive[true], is_positive[pred]
        b_tp = int(np.sum(true_bin & pred_bin))
        b_tn = int(np.sum(~true_bin & ~pred_bin))
        b_fp = int(np.sum(~true_bin & pred_bin))
        b_fn = int(np.sum(true_bin & ~pred_bin))
        auc = None
        if proba is not None and 0 < true_bin.sum() < true_bin.size:
            auc = float(roc_auc_score(true_bin, proba[:, is_positive].sum(axis=1)))
        sensitivity = _ratio(b_tp, b_tp + b_fn)
        result["binary"] = {
            "positive_classes": [class_names[i] for i in positive],
            "sensitivity": sensitivity,
            "recall_abnormal": sensitivity,
            "specificity": _ratio(b_tn, b_tn + b_fp),
            "accuracy": _ratio(b_tp + b_tn, true_bin.size),
            "auc": auc,
            "confusion_matrix": [[b_tn, b_fp], [b_fn, b_tp]],
        }
    return result
