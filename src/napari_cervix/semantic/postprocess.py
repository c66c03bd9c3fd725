"""From semantic labels to per-cell objects when no instance model is at hand.

Each nucleus component seeds one cell; the cell grows over the foreground (cytoplasm + nucleus) by a
watershed on the distance to the background, so touching cells are split between their nuclei.
Overlapping cells cannot be separated this way — that is what the instance capability is for.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import label as connected_components
from skimage.segmentation import watershed

from ..geometry import NUCLEUS


def cells_from_semantic(
    labels: np.ndarray, min_nucleus_area: int = 12, min_orphan_area: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(cell_labels, nucleus_labels), both H×W int32 with matching ids (nucleus k lies in cell k).

    Foreground regions with no nucleus become cells of their own (ids after the seeded ones) when they
    have at least ``min_orphan_area`` pixels and are more than two pixels thick: a smaller speck of
    "cytoplasm" (a stain fleck, a few pixels at a field's edge) or a thin rim is no cell, and would only
    add rows without a nucleus to the table.
    """
    labels = np.asarray(labels)
    nuclei = connected_components(labels == NUCLEUS, connectivity=1)
    if min_nucleus_area > 1:
        sizes = np.bincount(nuclei.ravel())
        small = sizes < min_nucleus_area
        small[0] = False
        nuclei[small[nuclei]] = 0
        nuclei = connected_components(nuclei > 0, connectivity=1)
    foreground = labels > 0
    distance = ndimage.distance_transform_edt(foreground)
    cells = watershed(-distance, markers=nuclei, mask=foreground)
    orphans = connected_components(foreground & (cells == 0), connectivity=1)
    if orphans.max():
        specks = np.bincount(orphans.ravel()) < max(min_orphan_area, 1)
        # A thread at most two pixels thin (a fibre, a strand of mucus) is no cell either, however long:
        # none of its pixels lies two pixels from the background, the image's edge counted as background.
        depth = ndimage.distance_transform_edt(np.pad(orphans > 0, 1))[1:-1, 1:-1]
        specks[1:] |= ndimage.maximum(depth, orphans, np.arange(1, orphans.max() + 1)) < 2
        specks[0] = False
        orphans = connected_components((orphans > 0) & ~specks[orphans], connectivity=1)
    cells = np.where(orphans > 0, orphans + nuclei.max(), cells)
    return cells.astype(np.int32), nuclei.astype(np.int32)
