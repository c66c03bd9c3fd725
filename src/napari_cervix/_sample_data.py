"""npe2 sample-data providers: a synthetic smear with its ground truth as napari layer-data tuples.

Plain numpy only (no napari import), so the functions are cheap to import and easy to test.
"""

from __future__ import annotations

import numpy as np

from .io.sample import CellSample
from .synth import generate_smear

#: Fixed seed so "File > Open Sample" shows the same smear every time.
SAMPLE_SEED = 2014


def cells_to_labels(cells: np.ndarray) -> np.ndarray:
    """N×H×W overlapping cell masks → H×W int32 labels (cell i → i + 1).

    Where cells overlap the smallest one is on top, so every cell keeps a visible patch (a large
    cell painted last would hide a small one lying on it).
    """
    cells = np.asarray(cells, bool)
    labels = np.zeros(cells.shape[1:], np.int32)
    areas = cells.reshape(len(cells), -1).sum(axis=1)
    for i in np.argsort(-areas, kind="stable"):
        labels[cells[i]] = i + 1
    return labels


def nuclei_to_labels(sample: CellSample) -> np.ndarray:
    """H×W int32 labels of the nuclei, each carrying its cell's label (0 = no nucleus)."""
    labels = np.zeros(sample.shape, np.int32)
    for i, nucleus in enumerate(sample.meta["cell_nuclei"]):
        labels[nucleus] = i + 1
    return labels


def _layers(sample: CellSample, image_name: str, image_kwargs: dict) -> list[tuple]:
    return [
        (sample.image, {"name": image_name, **image_kwargs}, "image"),
        (nuclei_to_labels(sample), {"name": "nuclei (ground truth)", "opacity": 0.6}, "labels"),
        (cells_to_labels(sample.cells), {"name": "cells (ground truth)", "opacity": 0.35}, "labels"),
    ]


def make_smear_sample() -> list[tuple]:
    """Gray synthetic smear (ISBI 2014 look) + nuclei and cells ground-truth labels."""
    sample = generate_smear(seed=SAMPLE_SEED)
    return _layers(sample, "synthetic smear", {})


def make_rgb_smear_sample() -> list[tuple]:
    """Pap-stained-looking RGB synthetic smear + nuclei and cells ground-truth labels."""
    sample = generate_smear(seed=SAMPLE_SEED, rgb=True)
    return _layers(sample, "synthetic smear (RGB)", {"rgb": True})
