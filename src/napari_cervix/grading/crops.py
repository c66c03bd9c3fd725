"""Square crops centred on nuclei: what the Bethesda classifier looks at.

A cytologist grades a squamous cell by its nucleus (size, shape, chromatin) and the cytoplasm right around
it, so the crop is a fixed window around the nucleus centre at the image's own resolution (CRIC Cervix's
own cell crops are 100 px around the nucleus at its resolution), not the cell's box resized to a fixed side
as for Herlev's isolated cells. Beyond the image edge the crop is mirrored, so border cells keep a
natural-looking surround.
"""

from __future__ import annotations

import numpy as np

from ..cells.crops import to_channels


def nucleus_crops(image, centres: np.ndarray, window: int, channels: int = 3, gains=None) -> np.ndarray:
    """N × C × window × window float32 crops in [0, 1] of ``image`` (H×W or H×W×3, any array-like)
    centred on the (row, col) ``centres``; ``gains``: per-channel factors applied first (the field's white
    balance, :func:`~napari_cervix.grading.recolor.white_balance_gains`), or None."""
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    height, width = image.shape[:2]
    half = window // 2
    out = np.empty((len(centres), channels, window, window), np.float32)
    for i, (row, col) in enumerate(centres):
        y0, x0 = int(round(row)) - half, int(round(col)) - half
        top, left = max(0, y0), max(0, x0)
        bottom, right = min(height, y0 + window), min(width, x0 + window)
        if bottom <= top or right <= left:
            raise ValueError(f"crop centre ({row:.1f}, {col:.1f}) lies outside the {height}×{width} image")
        pixels = to_channels(np.asarray(image[top:bottom, left:right]), channels)
        if gains is not None:
            pixels = np.clip(pixels * np.asarray(gains, np.float32), 0.0, 1.0)
        pad = ((top - y0, y0 + window - bottom), (left - x0, x0 + window - right), (0, 0))
        if any(p for pair in pad[:2] for p in pair):
            # ``symmetric`` needs no more than the crop's own size on each side; a tiny image gets edge values.
            mode = "symmetric" if max(max(pad[0]), max(pad[1])) <= min(pixels.shape[:2]) else "edge"
            pixels = np.pad(pixels, pad, mode=mode)
        out[i] = pixels.transpose(2, 0, 1)
    return out


def nucleus_centres(nucleus_labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(row, col) centroid of each nucleus label in ``ids`` (N × 2 float; NaN for an id with no pixels)."""
    from scipy import ndimage as ndi

    ids = np.asarray(ids, np.int64)
    if ids.size == 0:
        return np.zeros((0, 2), np.float64)
    with np.errstate(invalid="ignore"):
        centres = ndi.center_of_mass(np.ones(nucleus_labels.shape, np.float32), nucleus_labels, ids)
    return np.asarray(centres, np.float64).reshape(-1, 2)


def cell_nucleus_centres(table, cells, nuclei) -> np.ndarray:
    """(row, col) per table row: the centroid of the nucleus pixels inside the cell (its ``label`` in the
    :class:`~napari_cervix.cellset.CellSet` ``cells``), or the cell's own centroid when it has none.

    ``nuclei``: None, an H×W mask or Labels image, or sparse :class:`~napari_cervix.cellset.Masks`.
    """
    from ..cellset import union_mask

    nucleus_mask = union_mask(nuclei)
    position = {int(cell_id): k for k, cell_id in enumerate(cells.ids)}
    centres = np.empty((len(table), 2), np.float64)
    for i, row in enumerate(table.itertuples(index=False)):
        centres[i] = (row.centroid_y, row.centroid_x)
        if nucleus_mask is None:
            continue
        box = (int(row.bbox_y0), int(row.bbox_x0), int(row.bbox_y1), int(row.bbox_x1))
        inside = cells.cells.crop_in(position[int(row.label)], box) & nucleus_mask[box[0] : box[2], box[1] : box[3]]
        if inside.any():
            rows, cols = np.nonzero(inside)
            centres[i] = (rows.mean() + box[0], cols.mean() + box[1])
    return centres


def window_masks(cells, labels, nuclei, centres: np.ndarray, window: int) -> np.ndarray:
    """N × 2 × window × window one-hot (cytoplasm, nucleus) masks of the cells ``labels`` (ids in the
    :class:`~napari_cervix.cellset.CellSet` ``cells``) in the windows of :func:`nucleus_crops`: the cell's
    own pixels, its nucleus = the ``nuclei`` pixels inside it; zero beyond the image edge."""
    from ..cellset import union_mask

    nucleus_mask = union_mask(nuclei)
    height, width = cells.shape
    half = window // 2
    position = {int(cell_id): k for k, cell_id in enumerate(cells.ids)}
    out = np.zeros((len(centres), 2, window, window), np.float32)
    for i, (label, (row, col)) in enumerate(zip(labels, np.asarray(centres, np.float64).reshape(-1, 2))):
        y0, x0 = int(round(row)) - half, int(round(col)) - half
        top, left, bottom, right = max(0, y0), max(0, x0), min(height, y0 + window), min(width, x0 + window)
        cell = cells.cells.crop_in(position[int(label)], (top, left, bottom, right))
        nucleus = cell & nucleus_mask[top:bottom, left:right] if nucleus_mask is not None else np.zeros_like(cell)
        rows, cols = slice(top - y0, bottom - y0), slice(left - x0, right - x0)
        out[i, 0, rows, cols] = cell & ~nucleus
        out[i, 1, rows, cols] = nucleus
    return out
