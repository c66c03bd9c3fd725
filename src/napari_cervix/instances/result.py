"""What instance segmentation returns: overlapping cell masks, nuclei, ids that link them. numpy only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class InstanceResult:
    """Every detected cell and nucleus of one image, overlaps intact.

    ``cells``            N×H×W bool, one whole-cell mask (cytoplasm incl. nucleus) per cell; cells overlap.
    ``scores``           N float32 detection scores.
    ``cell_ids``         N int32, 1..N: the id linking a cell across every output (layers, tables).
    ``nuclei``           M×H×W bool, one mask per detected nucleus.
    ``nucleus_scores``   M float32.
    ``nucleus_cell_ids`` M int32: id of the cell each nucleus belongs to (the cell covering most of it,
                         the smallest on a tie), 0 for a nucleus outside every detected cell.
    Cells are sorted by descending score; ids follow that order.
    """

    cells: np.ndarray
    scores: np.ndarray
    cell_ids: np.ndarray
    nuclei: np.ndarray
    nucleus_scores: np.ndarray
    nucleus_cell_ids: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.cells.shape[1:])

    def __len__(self) -> int:
        return int(self.cells.shape[0])

    @property
    def areas(self) -> np.ndarray:
        return self.cells.sum(axis=(1, 2)).astype(np.int64)

    def nuclei_union(self) -> np.ndarray:
        """H×W bool union of all nuclei (the form :class:`~napari_cervix.io.CellSample` uses)."""
        return np.any(self.nuclei, axis=0) if len(self.nuclei) else np.zeros(self.shape, bool)

    def cell_labels(self) -> np.ndarray:
        """H×W int32 labels of the cells, overlaps resolved by one rule: **the smallest cell wins**.

        A pixel covered by several cells gets the id of the smallest of them, so a small cell lying on
        a large one stays visible whole, and every cell keeps its non-overlapped part. The full,
        overlapping masks stay in :attr:`cells`.
        """
        labels = np.zeros(self.shape, np.int32)
        for index in np.argsort(-self.areas, kind="stable"):  # largest first, smallest painted last
            labels[self.cells[index]] = self.cell_ids[index]
        return labels

    def nucleus_labels(self) -> np.ndarray:
        """H×W int32: each nucleus painted with its cell's id (several nuclei of one cell share it).

        A nucleus outside every detected cell gets an id above all cell ids (N+1, N+2, …), so it is
        still visible and never mistaken for another cell's nucleus.
        """
        labels = np.zeros(self.shape, np.int32)
        next_id = int(self.cell_ids.max()) + 1 if len(self.cell_ids) else 1
        for index in np.argsort(-self.nuclei.sum(axis=(1, 2)), kind="stable"):
            value = int(self.nucleus_cell_ids[index])
            if value == 0:
                value, next_id = next_id, next_id + 1
            labels[self.nuclei[index]] = value
        return labels

    def to_predictions(self) -> dict:
        """COCO-style predictions for :func:`napari_cervix.metrics.coco_segm_metrics`: cells and nuclei
        stacked, ``labels`` as class names."""
        masks = np.concatenate([self.cells, self.nuclei]) if len(self.nuclei) else self.cells
        return {
            "masks": masks,
            "scores": np.concatenate([self.scores, self.nucleus_scores]).astype(np.float32),
            "labels": np.array(["cell"] * len(self.cells) + ["nucleus"] * len(self.nuclei), dtype=object),
        }


def assign_nuclei(cells: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """For each nucleus the index+1 of the cell covering most of its pixels (smallest cell on a tie:
    in an overlap the nucleus more likely belongs to the small cell lying on the large one); 0 if none."""
    if not len(nuclei) or not len(cells):
        return np.zeros(len(nuclei), np.int32)
    flat_cells = cells.reshape(len(cells), -1)
    areas = flat_cells.sum(1)
    owners = np.zeros(len(nuclei), np.int32)
    for k, nucleus in enumerate(nuclei.reshape(len(nuclei), -1)):
        pixels = np.flatnonzero(nucleus)
        if not len(pixels):
            continue
        covered = flat_cells[:, pixels].sum(1)
        if covered.max() == 0:
            continue
        best = np.flatnonzero(covered == covered.max())
        owners[k] = int(best[np.argmin(areas[best])]) + 1
    return owners
