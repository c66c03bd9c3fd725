"""An :class:`InstanceResult` as napari layer-data tuples (numpy/pandas only, no napari import).

Overlapping cells cannot live in one Labels layer, so a result becomes three layers linked by cell id:

* ``cells`` — **Shapes**, one polygon outline per cell, overlaps intact; ``features``: ``cell_id``,
  ``score``, ``area`` (pixels), ``class``, ``n_nuclei``. Its ``metadata["cells"]`` holds the N×H×W
  mask stack (ids = index + 1) for per-cell measurement and classification.
* ``cell labels`` — **Labels**, each pixel the id of the *smallest* cell covering it
  (:meth:`InstanceResult.cell_labels`), so small cells lying on large ones stay visible; its
  ``features`` follow napari's convention (row i = label i, a ``label`` column, background row 0).
* ``nuclei`` — **Labels**, each nucleus painted with its cell's id (orphans get ids above N).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..tables import features_for_layer
from .result import InstanceResult

MAX_VERTICES = 256  # outlines are subsampled to this many points: enough on screen, fast to draw


def outline(mask: np.ndarray) -> np.ndarray:
    """Longest iso-contour of a mask as a (row, col) polygon, in pixel-centre coordinates."""
    from skimage.measure import find_contours

    contours = find_contours(np.pad(mask, 1).astype(np.float32), 0.5)
    if not contours:
        return np.zeros((0, 2))
    contour = max(contours, key=len) - 1.0  # undo the padding
    if len(contour) > MAX_VERTICES:
        contour = contour[np.linspace(0, len(contour) - 1, MAX_VERTICES).astype(int)]
    return contour


def cell_table(result: InstanceResult) -> pd.DataFrame:
    n_nuclei = np.bincount(result.nucleus_cell_ids, minlength=len(result) + 1)[1 : len(result) + 1]
    return pd.DataFrame(
        {
            "cell_id": result.cell_ids.astype(np.int32),
            "score": result.scores.astype(np.float32),
            "area": result.areas,
            "class": pd.Categorical(["cell"] * len(result), categories=["cell"]),
            "n_nuclei": n_nuclei.astype(np.int32),
        }
    )


def layer_tuples(result: InstanceResult, name: str = "", place: dict | None = None) -> list[tuple]:
    """``[(data, kwargs, layer_type), …]`` for Shapes outlines, cell Labels and nucleus Labels."""
    place = dict(place or {})
    prefix = f"{name} " if name else ""
    table = cell_table(result)
    polygons = [outline(mask) for mask in result.cells]
    keep = [i for i, p in enumerate(polygons) if len(p) >= 3]
    # A cell whose mask is too thin for a polygon still has its row in the metadata table.
    shapes_kwargs = dict(
        name=f"{prefix}cells",
        shape_type="polygon",
        features=table.iloc[keep].reset_index(drop=True),
        edge_width=2,
        edge_color="cell_id",
        edge_colormap="turbo",
        face_color="transparent",
        metadata={
            "cells": result.cells,
            "cell_ids": result.cell_ids,
            "table": table,
            "instance_result": result,
            "overlap_rule": "smallest cell wins (cell labels layer)",
        },
        **place,
    )
    if not keep:
        # An empty Shapes layer cannot color edges by a feature it has no rows for.
        shapes_kwargs.update(edge_color="yellow")
        shapes_kwargs.pop("edge_colormap")
    cells = ([polygons[i] for i in keep], shapes_kwargs, "shapes")
    cell_labels = (
        result.cell_labels(),
        dict(
            name=f"{prefix}cell labels",
            opacity=0.4,
            visible=False,
            features=features_for_layer(table.rename(columns={"cell_id": "label"}), None, len(result) + 1),
            metadata={"overlap_rule": "each pixel belongs to the smallest cell covering it"},
            **place,
        ),
        "labels",
    )
    nuclei = (
        result.nucleus_labels(),
        dict(
            name=f"{prefix}nuclei",
            opacity=0.7,
            metadata={
                "nucleus_cell_ids": result.nucleus_cell_ids,
                "nuclei": result.nuclei,
                "label_rule": "each nucleus has its cell's id; ids above the cell count: no cell",
            },
            **place,
        ),
        "labels",
    )
    return [cell_labels, nuclei, cells]
