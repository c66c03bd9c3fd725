"""The one in-memory sample type every reader returns and every capability consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..cellset import CellSet, Masks
from ..geometry import CYTOPLASM, NUCLEUS, SEMANTIC_CLASSES

__all__ = ["CellSample", "SEMANTIC_CLASSES"]


@dataclass
class CellSample:
    """One image with whatever ground truth its source has.

    ``image``  H×W (gray) or H×W×3 (RGB) array, original dtype.
    ``cells``  :class:`~napari_cervix.cellset.CellSet` of the *whole cells* (cytoplasm incl. nucleus),
               overlaps intact, with their own nuclei where the source links them (synthetic smears);
               ``None`` when the source has no per-cell annotation. An N×H×W mask stack given here is
               converted to a CellSet.
    ``nuclei`` H×W bool mask of every nucleus (the union), or ``None``.
    ``label``  class name for single-cell sources (Herlev), else ``None``.
    ``name``   short identifier (file stem); ``source`` the file it came from.
    ``partial_annotation``  set by the reader: True when not everything in the image is annotated (real
               frames with only nuclei or only some cells, point-annotated fields), so a pixel outside the
               annotation is unknown, not background.
    """

    image: np.ndarray
    cells: CellSet | None = None
    nuclei: np.ndarray | None = None
    label: str | None = None
    name: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict)
    partial_annotation: bool = False

    def __post_init__(self):
        if self.cells is not None and not isinstance(self.cells, CellSet):
            self.cells = CellSet.from_stack(self.cells, shape=self.shape)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.image.shape[:2])

    def cell_set(self) -> CellSet:
        """The sample's ground truth as one cell set: its cells (an empty set when it has none) with
        their nuclei — their own where the cell set links them (synthetic smears), else the 8-connected
        components of :attr:`nuclei`, each linked to the cell covering most of it."""
        cells = self.cells if self.cells is not None else CellSet(Masks(self.shape))
        if self.nuclei is None or len(cells.nuclei):
            return cells
        return cells.with_nuclei_mask(self.nuclei)

    def semantic_target(self) -> np.ndarray:
        """H×W uint8: 2 = nucleus where any nucleus, 1 = cytoplasm where any cell and no nucleus, else 0."""
        target = np.zeros(self.shape, np.uint8)
        if self.cells is not None and len(self.cells):
            target[self.cells.union()] = CYTOPLASM
        if self.nuclei is not None:
            target[self.nuclei.astype(bool)] = NUCLEUS
        return target
