"""The one in-memory sample type every reader returns and every capability consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Semantic classes, in label order. Index = value in a semantic Labels image.
SEMANTIC_CLASSES = ("background", "cytoplasm", "nucleus")


@dataclass
class CellSample:
    """One image with whatever ground truth its source has.

    ``image``  H×W (gray) or H×W×3 (RGB) array, original dtype.
    ``cells``  N×H×W bool stack of *whole-cell* masks (cytoplasm incl. nucleus); cells may overlap.
               ``None`` when the source has no per-cell annotation.
    ``nuclei`` H×W bool mask of every nucleus (the union), or ``None``.
    ``label``  class name for single-cell sources (Herlev), else ``None``.
    ``name``   short identifier (file stem); ``source`` the file it came from.
    """

    image: np.ndarray
    cells: np.ndarray | None = None
    nuclei: np.ndarray | None = None
    label: str | None = None
    name: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.image.shape[:2])

    def semantic_target(self) -> np.ndarray:
        """H×W uint8: 2 = nucleus where any nucleus, 1 = cytoplasm where any cell and no nucleus, else 0."""
        target = np.zeros(self.shape, np.uint8)
        if self.cells is not None and len(self.cells):
            target[np.any(self.cells, axis=0)] = 1
        if self.nuclei is not None:
            target[self.nuclei.astype(bool)] = 2
        return target
