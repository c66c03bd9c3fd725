"""Measure and classify every cell of an image: the table behind the widget, the CLI and the API.

:func:`classify_cells_steps` is a generator (one progress step per batch of cells, so napari can show
progress and cancel between batches); :func:`classify_cells` drives it to the end for console use.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator

import numpy as np
import pandas as pd

from ..cellset import CellSet, union_mask
from ..geometry import CYTOPLASM, NUCLEUS
from ..grading.crops import cell_nucleus_centres, nucleus_crops, window_masks
from ..grading.recolor import white_balance_gains
from ..imaging import ImageError, check_image, color_kind
from ..tiling import TileProgress as Progress  # the one progress type the widgets understand
from .crops import (
    CROP_MARGIN,
    crop_box,
    isolate_cell,
    otsu_semantic_mask,
    resize_square,
    semantic_to_onehot,
    to_channels,
)
from .features import as_cell_set, measure_cells

BATCH = 128


def cell_crops(
    image,
    table: pd.DataFrame,
    cells: CellSet,
    nuclei,
    *,
    size: int,
    channels: int,
    isolate: bool = True,
    with_masks: bool = False,
    mask_fn=None,
):
    """Crops (N × C × S × S) and, when asked, one-hot masks (N × 2 × S × S) of the table's cells.

    The table's ``label`` is the cell's id in ``cells``, whose cropped mask gives the cell's pixels. Each
    crop is the cell's bounding box grown by :data:`CROP_MARGIN`, optionally with the surroundings beyond
    the margin replaced by background (``isolate``), resized to S × S like Herlev's cells.
    """
    pixels = to_channels(image, channels)  # H × W × C float32 in [0, 1]
    position = {int(cell_id): k for k, cell_id in enumerate(cells.ids)}
    nuclei_mask = union_mask(nuclei)
    crops = np.empty((len(table), channels, size, size), np.float32)
    masks = np.empty((len(table), 2, size, size), np.float32) if with_masks else None
    for i, row in enumerate(table.itertuples(index=False)):
        y0, x0, y1, x1, pad = crop_box((row.bbox_y0, row.bbox_x0, row.bbox_y1, row.bbox_x1), cells.shape, CROP_MARGIN)
        cell = cells.cells.crop_in(position[int(row.label)], (y0, x0, y1, x1))
        crop = pixels[y0:y1, x0:x1]
        if isolate:
            crop = isolate_cell(crop, cell, pad)
        crops[i] = resize_square(crop, size).transpose(2, 0, 1)
        if with_masks:
            if nuclei_mask is not None:
                semantic = np.where(cell, np.where(nuclei_mask[y0:y1, x0:x1], NUCLEUS, CYTOPLASM), 0).astype(np.uint8)
                semantic = resize_square(semantic, size, nearest=True)
            else:
                semantic = np.asarray(mask_fn(crops[i].mean(axis=0)), np.uint8)
                semantic = np.where(resize_square(cell.astype(np.uint8), size, nearest=True) > 0, semantic, 0)
            masks[i] = semantic_to_onehot(semantic)
    return crops, masks


def classify_cells_steps(
    image,
    cells,
    nuclei=None,
    model="default",
    *,
    isolate: bool = True,
    mask_fn=None,
    measure: bool = True,
    tta: int | None = None,
) -> Generator[Progress, None, pd.DataFrame]:
    """Generator version of :func:`classify_cells` (yields progress, returns the table)."""
    from .classifier import load_classifier

    check_image(image)
    classifier = load_classifier(model, color_kind(image))  # "default": the model trained for this input
    if tta is not None:  # fewer test-time views: faster, and no longer exactly the validated setting
        classifier = copy.copy(classifier)  # never change the caller's classifier object
        classifier.tta = max(1, min(int(tta), 8))
    cells = as_cell_set(cells, tuple(np.asarray(image).shape[:2]))  # one conversion, for table and crops
    table = measure_cells(image, cells, nuclei, lbp=measure)
    if not measure:
        table = table[["label", "centroid_y", "centroid_x", "bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1"]]
    total = len(table)
    yield Progress(0, total)
    # Without given nuclei, mask-using models get the Otsu fallback masks they were trained with.
    mask_fn = mask_fn or otsu_semantic_mask
    # Given nuclei always shape the table's columns; the crops' masks use them only where the model allows.
    crop_nuclei = nuclei if classifier.uses_given_nuclei else None
    # Bethesda grading looks at a window centred on the nucleus, Herlev-style kinds at the cell's box.
    centred = getattr(classifier.kind, "crop", "cell") == "nucleus"
    if centred:  # one union of the nuclei for every batch's centres and window masks
        crop_nuclei = union_mask(crop_nuclei)
    centres = cell_nucleus_centres(table, cells, crop_nuclei) if centred else None
    # A grader trained on white-balanced fields sees this one white-balanced too (its card says so).
    gains = white_balance_gains(image) if classifier.model_config.get("white_balance") else None
    if centred:  # graded together: a grader may read each cell relative to the image's others
        proba = yield from _grade_centred(image, table, cells, nuclei, centres, classifier, gains)
        return add_predictions(table, classifier, proba)
    proba = np.zeros((total, len(classifier.classes)), np.float32)
    for start in range(0, total, BATCH):
        part = table.iloc[start : start + BATCH]
        crops, masks = cell_crops(
            image,
            part,
            cells,
            crop_nuclei,
            size=classifier.size,
            channels=classifier.channels,
            isolate=isolate,
            with_masks=classifier.needs_masks,
            mask_fn=mask_fn,
        )
        proba[start : start + len(part)] = classifier.predict_proba(crops, masks)
        yield Progress(min(start + BATCH, total), total)
    return add_predictions(table, classifier, proba)


def _grade_centred(image, table, cells, nuclei, centres, classifier, gains) -> Generator[Progress, None, np.ndarray]:
    """Probabilities of every cell from nucleus-centred windows: each batch's :meth:`cell_parts` (the slow
    part, with progress), then one :meth:`grade` of all of them (a grader with a field context compares
    each cell with the image's others, see :mod:`napari_cervix.grading.context`)."""
    total, kind, parts = len(table), classifier.kind, []
    for start in range(0, total, BATCH):
        where = centres[start : start + BATCH]
        crops = nucleus_crops(image, where, classifier.size, classifier.channels, gains)
        labels = table["label"].iloc[start : start + BATCH]
        masks = window_masks(cells, labels, nuclei, where, classifier.size) if classifier.needs_masks else None
        parts.append(kind.cell_parts(classifier, crops, masks))
        yield Progress(min(start + BATCH, total), total)
    if not parts:
        return np.zeros((0, len(classifier.classes)), np.float32)
    return kind.grade(classifier, {key: np.concatenate([p[key] for p in parts]) for key in parts[0]})


def add_predictions(table: pd.DataFrame, classifier, proba: np.ndarray) -> pd.DataFrame:
    """Append predicted class, per-class probabilities, P(reviewable) and the reviewable flag."""
    table = table.copy()
    if len(table):
        index, p_abnormal, flag = classifier.decide(proba)
        table["predicted_class"] = pd.Categorical([classifier.classes[i] for i in index], categories=classifier.classes)
    else:
        p_abnormal, flag = np.zeros(0), np.zeros(0, bool)
        table["predicted_class"] = pd.Categorical([], categories=classifier.classes)
    for j, name in enumerate(classifier.classes):
        table[f"p_{name}"] = proba[:, j] if len(table) else np.zeros(0)
    table["p_reviewable"] = p_abnormal
    table["reviewable"] = flag.astype(bool)
    return table


def classify_cells(
    image,
    cells,
    nuclei=None,
    model="default",
    *,
    isolate: bool = True,
    mask_fn=None,
    tta: int | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> pd.DataFrame:
    """Measurements + predicted class, class probabilities and reviewable flag for every cell.

    ``cells``/``nuclei`` as for :func:`~napari_cervix.cells.features.measure_cells`; ``model`` a registered
    classifier name, ``"default"``, a safetensors file or a loaded classifier. An image without cells gives
    an empty table (with all columns); mismatched shapes raise :class:`~napari_cervix.imaging.ImageError`.
    ``tta`` overrides the model's number of test-time flips/rotations (8 for the shipped models, which is
    what their validation figures used; 1 is 8× faster on a CPU). A Bethesda grader with a field context
    (the shipped one) reads each cell relative to the other cells given: pass all of a field's cells, not a
    few picked ones (a few cells are compared with a typical training field instead).
    """
    from ..tiling import run_to_end

    if cells is None:
        raise ImageError("no cells given: pass a cell set, a Labels image or a stack of cell masks")
    steps = classify_cells_steps(image, cells, nuclei, model, isolate=isolate, mask_fn=mask_fn, tta=tta)
    return run_to_end(steps, progress)
