"""The training and evaluation cells of the Bethesda classifier on CRIC Cervix fields (points + classes).

CRIC marks each squamous cell by one point at its nucleus centre; nothing else is annotated. The classifier
grades what the detector finds, so its cells come from the detector's nuclei and cells (the semantic
model's nucleus components and the cells grown from them, as :func:`napari_cervix.field.analyze_field`
finds them):

* a **graded detection** is a nucleus within :data:`TOLERANCE` px of annotated points; its class is the most
  severe of them (two touching nuclei read as one component are graded by the worse one, as a reader would)
  and its crop is centred on the detection, not on the point, as at inference;
* an annotated point no detection reaches is a **missed** cell: end to end it counts as not flagged (an
  abnormal one is a miss);
* a detection farther than :data:`FAR` px from every point is **not a squamous cell** as far as CRIC knows
  (leukocytes, debris, out-of-focus clumps; CRIC leaves some epithelial cells unmarked too, which is why this
  class only keeps such objects out of review and never grades them); detections between the two
  distances are left out of training (they are often the cytoplasm or a fragment of a marked cell).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..classes import BETHESDA_GRADES, NOT_SQUAMOUS
from ..io.cric import short_bethesda

#: A detection within this distance (px) of an annotated nucleus centre is that cell.
TOLERANCE = 4.0
#: A detection farther than this from every annotated point (px) counts as no squamous cell.
FAR = 24.0
#: Output classes of the Bethesda classifier, in index order.
OUTPUT_CLASSES = (*BETHESDA_GRADES, NOT_SQUAMOUS)


def match_points(nucleus_labels: np.ndarray, points: np.ndarray, tolerance: float = TOLERANCE) -> np.ndarray:
    """The nucleus label each (row, col) point falls on or within ``tolerance`` px of (0 = missed)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if not nucleus_labels.any() or len(points) == 0:
        return np.zeros(len(points), np.int64)
    distance, (near_rows, near_cols) = ndi.distance_transform_edt(nucleus_labels == 0, return_indices=True)
    rows = np.clip(np.round(points[:, 0]).astype(int), 0, nucleus_labels.shape[0] - 1)
    cols = np.clip(np.round(points[:, 1]).astype(int), 0, nucleus_labels.shape[1] - 1)
    labels = nucleus_labels[near_rows[rows, cols], near_cols[rows, cols]].astype(np.int64)
    return np.where(distance[rows, cols] <= tolerance, labels, 0)


@dataclass
class FieldCells:
    """One field's objects for the classifier: detections (label, centre, class index or -1 when neither a
    graded nor a not-squamous training cell) and the annotated points (class index, matched label)."""

    name: str
    labels: np.ndarray  # detection labels (nucleus ids)
    centres: np.ndarray  # detection centres, (row, col)
    targets: np.ndarray  # per detection: index into OUTPUT_CLASSES, or -1 (left out of training)
    point_classes: np.ndarray  # per annotated point: index into BETHESDA_GRADES
    point_labels: np.ndarray  # per annotated point: the detection it matched, 0 = missed
    points: np.ndarray  # annotated points, (row, col)


def field_cells(name: str, nucleus_labels: np.ndarray, points: np.ndarray, classes) -> FieldCells:
    """Match one field's annotated points to its detected nuclei (see the module docstring)."""
    from .crops import nucleus_centres

    points = np.asarray(points, np.float64).reshape(-1, 2)
    point_classes = np.array([BETHESDA_GRADES.index(short_bethesda(c)) for c in classes], np.int64)
    point_labels = match_points(nucleus_labels, points)
    labels = np.unique(nucleus_labels)
    labels = labels[labels > 0]
    centres = nucleus_centres(nucleus_labels, labels)
    targets = np.full(len(labels), -1, np.int64)
    position = {int(label): k for k, label in enumerate(labels)}
    for label, cls in zip(point_labels, point_classes):
        if label:
            k = position[int(label)]
            targets[k] = max(targets[k], cls)  # the most severe point on a detection grades it
    if len(points):
        far = np.sqrt(((centres[:, None, :] - points[None, :, :]) ** 2).sum(-1)).min(1) > FAR
    else:
        far = np.ones(len(labels), bool)
    targets[(targets < 0) & far] = OUTPUT_CLASSES.index(NOT_SQUAMOUS)
    return FieldCells(name, labels, centres, targets, point_classes, point_labels, points)
