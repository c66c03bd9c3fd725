"""Geometry rules with exactly one answer each, used by every module that needs them (numpy + scipy).

* **Class indices** of a semantic label image: :data:`SEMANTIC_CLASSES` (re-exported by
  :mod:`napari_cervix.io.sample` and :mod:`napari_cervix.classes`) and the named indices below.
* **Nucleus connectivity**: nuclei in a union mask are its *8-connected* components (a diagonal step keeps
  one nucleus), in evaluation, training targets, COCO export, layers and the ``nucleus_count`` column.
* **Overlap → labels**: where cells overlap, the smallest cell wins (:func:`smallest_wins_order`).
* **Outlines**: one polygon per mask, the longest iso-contour (:func:`outline`).
* **Padding** a tile to a multiple of the network's stride (:func:`pad_to_multiple`).
* **A box with a rim**: a mask's box grown by a few pixels, clipped to the image (:func:`grow_box`).
"""

from __future__ import annotations

import numpy as np

#: Semantic classes, in label order. Index = value in a semantic Labels image.
SEMANTIC_CLASSES = ("background", "cytoplasm", "nucleus")
BACKGROUND = SEMANTIC_CLASSES.index("background")
CYTOPLASM = SEMANTIC_CLASSES.index("cytoplasm")
NUCLEUS = SEMANTIC_CLASSES.index("nucleus")

#: scipy structuring element of the one connectivity rule: all 8 neighbours.
EIGHT_CONNECTED = np.ones((3, 3), bool)

#: Outlines are subsampled to at most this many vertices: enough on screen, fast to draw.
MAX_VERTICES = 256


def label_components(mask: np.ndarray) -> np.ndarray:
    """H×W int32 labels of the 8-connected components of a bool mask (1..K in raster order)."""
    from scipy import ndimage as ndi

    return ndi.label(np.asarray(mask, bool), structure=EIGHT_CONNECTED)[0].astype(np.int32)


def smallest_wins_order(areas: np.ndarray) -> np.ndarray:
    """Painting order for overlapping masks so that each pixel ends with the smallest mask covering it:
    largest first, smallest last (equal areas: later masks on top)."""
    return np.argsort(-np.asarray(areas), kind="stable")


def outline(mask: np.ndarray) -> np.ndarray:
    """Longest iso-contour of a mask as a (row, col) polygon in pixel-centre coordinates, at most
    :data:`MAX_VERTICES` points; an empty (0, 2) array for an empty mask."""
    from skimage.measure import find_contours

    contours = find_contours(np.pad(np.asarray(mask), 1).astype(np.float32), 0.5)
    if not contours:
        return np.zeros((0, 2))
    contour = max(contours, key=len) - 1.0  # undo the padding
    if len(contour) > MAX_VERTICES:
        contour = contour[np.linspace(0, len(contour) - 1, MAX_VERTICES).astype(int)]
    return contour


def grow_box(box, pad: int, shape) -> tuple[int, int, int, int]:
    """Box ``(y0, x0, y1, x1)`` grown by ``pad`` pixels on every side, clipped to an image of ``shape``."""
    y0, x0, y1, x1 = (int(v) for v in box)
    return max(y0 - pad, 0), max(x0 - pad, 0), min(y1 + pad, int(shape[0])), min(x1 + pad, int(shape[1]))


def pad_to_multiple(
    tile: np.ndarray, multiple: int, min_size: int = 0, fill: float | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the two leading axes at the bottom/right up to a multiple of ``multiple`` (and at least
    ``min_size``); returns (padded, original (h, w)). Mirrored (``symmetric``) by default, or the constant
    ``fill`` (e.g. the tile's median, a background-like value for detectors)."""
    h, w = tile.shape[:2]
    th = max(min_size, -(-h // multiple) * multiple)
    tw = max(min_size, -(-w // multiple) * multiple)
    if (th, tw) == (h, w):
        return tile, (h, w)
    pad = [(0, th - h), (0, tw - w)] + [(0, 0)] * (tile.ndim - 2)
    if fill is None:
        return np.pad(tile, pad, mode="symmetric"), (h, w)
    return np.pad(tile, pad, mode="constant", constant_values=fill), (h, w)
