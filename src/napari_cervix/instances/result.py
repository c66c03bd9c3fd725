"""What instance segmentation returns: the image's :class:`~napari_cervix.cellset.CellSet`. numpy only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..cellset import CellSet, Masks


@dataclass
class InstanceResult:
    """Every detected cell and nucleus of one image, overlaps intact, as a sparse cell set.

    ``cells``  the :class:`~napari_cervix.cellset.CellSet`: per cell an id (1..N, by descending score), a
               box, the mask cropped to it and a score; the nuclei as objects of their own, each linked to
               the cell covering most of it (the smallest on a tie), 0 when it lies in no detected cell.
               Cells completed from the semantic model (``meta["completed"]``) follow, from
               ``meta["completed"]["first_id"]`` on, scored by their nucleus's mean semantic probability.
    ``meta``   model, tiling, threshold and scale settings, and the completion's counts.
    """

    cells: CellSet
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.cells.shape

    def __len__(self) -> int:
        return len(self.cells)

    @property
    def areas(self) -> np.ndarray:
        return self.cells.areas

    @property
    def scores(self) -> np.ndarray:
        return self.cells.scores

    @property
    def cell_ids(self) -> np.ndarray:
        return self.cells.ids

    @property
    def nuclei(self) -> Masks:
        """The detected nuclei (sparse masks, with ``scores``)."""
        return self.cells.nuclei

    @property
    def nucleus_scores(self) -> np.ndarray:
        return self.cells.nuclei.scores

    @property
    def nucleus_cell_ids(self) -> np.ndarray:
        return self.cells.nucleus_cell_ids

    def nuclei_union(self) -> np.ndarray:
        """H×W bool union of all nuclei (the form :class:`~napari_cervix.io.CellSample` uses)."""
        return self.cells.nuclei.union()

    def cell_labels(self) -> np.ndarray:
        """H×W int32 cell ids, the smallest cell winning each overlapped pixel
        (:meth:`~napari_cervix.cellset.CellSet.cell_labels`)."""
        return self.cells.cell_labels()

    def nucleus_labels(self) -> np.ndarray:
        """H×W int32, each nucleus painted with its cell's id, nuclei in no cell above every cell id
        (:meth:`~napari_cervix.cellset.CellSet.nucleus_labels`)."""
        return self.cells.nucleus_labels()

    def to_predictions(self) -> CellSet:
        """The prediction :func:`napari_cervix.metrics.coco_segm_metrics` scores: the cell set (cells and
        nuclei with their scores)."""
        return self.cells
