"""Nuclei the detector missed, added from the semantic model, each with a cell.

Why: on real Papanicolaou fields the color semantic model finds 99 % of the annotated nuclei, the
detector (trained mostly on gray ISBI data, reading luminance) about 78 %, and the misses are the pale,
enlarged abnormal nuclei a screener most needs. The detector keeps what it is good at — overlapping
cells as separate masks — and the semantic model fills in the nuclei it did not find:

* the semantic nucleus pixels more than :data:`MARGIN_PX` from every detected nucleus, opened by a disk
  of :data:`OPENING_RADIUS_PX` (a rim around a detected nucleus is not a nucleus), split into connected
  pieces: each piece of at least ``min_nucleus_px`` becomes a nucleus of its own, scored by its mean
  nucleus probability. Pieces, not whole components: the semantic model often joins a cluster of nuclei
  into one component, of which the detector finds only some (measured on CRIC: a 20 % claim rule on whole
  components lost 3 of 27 ASC-H nuclei on one field). The price: when the detector found only a fragment
  of a large nucleus, the rest of it is added as a second nucleus;
* it joins the detected cell that covers most of it when that cell has no nucleus of its own; otherwise
  it gets a new cell: its nearest-nucleus share of the semantic foreground (cytoplasm + nucleus) within
  :data:`MAX_CELL_RADIUS_UM` (:func:`~napari_cervix.pseudo_labels.nearest_nucleus_cells`).

The added cells follow the rule that makes the cells of the instance model's CRIC training targets
(``scripts/cric_instance_targets.py``, which shares :data:`MAX_CELL_RADIUS_UM`).
numpy/scipy only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..cellset import CellSet, Masks
from ..geometry import CYTOPLASM, NUCLEUS

#: A squamous cell is at most about 60 µm across: a completed nucleus's cell stays within this radius.
MAX_CELL_RADIUS_UM = 32.0

#: Semantic nucleus pixels this close to a detected nucleus belong to it (its edge may be drawn tighter).
MARGIN_PX = 2
#: Rims and slivers thinner than twice this are left out of the added nuclei.
OPENING_RADIUS_PX = 3
#: An added nucleus covers at least this much (a small lymphocyte nucleus is about 20 µm²).
MIN_NUCLEUS_AREA_UM2 = 8.0

#: The user's choice (CLI ``--complete-nuclei``, the widget's box) → ``segment_instances(complete_nuclei=…)``.
COMPLETE_NUCLEI = {"auto": None, "on": True, "off": False}


def complete_cell_set(
    cells: CellSet,
    semantic: np.ndarray,
    nucleus_probability: np.ndarray,
    max_cell_radius_px: float,
    min_nucleus_px: float = 0.0,
) -> tuple[CellSet, dict]:
    """``cells`` plus the semantic nuclei it misses, and counts (``nuclei``, ``cells``, ``first_id``).

    ``semantic``: H×W labels (0 background, 1 cytoplasm, 2 nucleus) on the cells' grid;
    ``nucleus_probability``: H×W nucleus-class probability there. The detected cells and nuclei are kept
    as they are (same ids, same order); the added cells take ids after the largest detected id.
    ``max_cell_radius_px`` bounds an added cell, ``min_nucleus_px`` the area of an added nucleus.
    """
    from skimage.morphology import disk

    from ..geometry import label_components
    from ..pseudo_labels import nearest_nucleus_cells

    semantic = np.asarray(semantic)
    if semantic.shape != cells.shape:
        raise ValueError(f"semantic labels are {semantic.shape}, the cells' image is {cells.shape}")
    detected = cells.nuclei.paint(np.arange(1, len(cells.nuclei) + 1, dtype=np.int32))
    free = (semantic == NUCLEUS) & ~ndi.binary_dilation(detected > 0, iterations=MARGIN_PX)
    pieces = label_components(ndi.binary_opening(free, structure=disk(OPENING_RADIUS_PX)))
    areas = np.bincount(pieces.ravel())
    keep = areas >= max(float(min_nucleus_px), 1.0)
    keep[0] = False
    renumber = np.zeros(len(areas), np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1)
    added_labels = renumber[pieces]
    offset = len(cells.nuclei)
    first_id = int(cells.ids.max()) + 1 if len(cells) else 1
    if not added_labels.any():
        return cells, {"nuclei": 0, "cells": 0, "first_id": first_id}
    added, values = Masks.from_labels(added_labels)
    scores = np.asarray(ndi.mean(np.asarray(nucleus_probability, np.float32), added_labels, values), np.float32)
    added = Masks(cells.shape, added.boxes, added.crops, scores)

    # Join a detected cell that has no nucleus of its own; else a new cell around the nucleus.
    owners = CellSet(cells.cells, cells.ids, added).nucleus_cell_ids
    with_nucleus = cells.nucleus_cell_ids[cells.nucleus_cell_ids > 0]
    needs_cell = (owners == 0) | np.isin(owners, with_nucleus)
    everything = np.where(added_labels > 0, added_labels + offset, detected)
    foreground = np.isin(semantic, (CYTOPLASM, NUCLEUS))
    basins = nearest_nucleus_cells(foreground, everything, float(max_cell_radius_px))
    basins = np.where(np.isin(basins, values[needs_cell] + offset), basins, 0)
    new_cells, basin_values = Masks.from_labels(basins)
    nucleus_of_cell = np.searchsorted(values, basin_values - offset)  # each new cell's added nucleus
    new_cells = Masks(cells.shape, new_cells.boxes, new_cells.crops, scores[nucleus_of_cell])
    new_ids = np.arange(first_id, first_id + len(new_cells), dtype=np.int32)
    links = np.where(needs_cell, 0, owners).astype(np.int32)
    links[nucleus_of_cell] = new_ids
    merged = CellSet(
        Masks.concatenate([cells.cells, new_cells]),
        np.concatenate([cells.ids, new_ids]),
        Masks.concatenate([cells.nuclei, added]),
        np.concatenate([cells.nucleus_cell_ids, links]),
    )
    return merged, {"nuclei": len(added), "cells": len(new_cells), "first_id": first_id}
