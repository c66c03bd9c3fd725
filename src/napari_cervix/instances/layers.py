"""Any cell set — ground truth from a reader or the sample data, or a prediction — as the same linked
napari layer-data tuples (numpy/pandas only, no napari import).

Overlapping cells cannot live in one Labels layer, so a cell set becomes three layers linked by cell id,
named after ``name``:

* ``{name} cell labels`` — **Labels**, each pixel the id of the *smallest* cell covering it
  (:meth:`~napari_cervix.cellset.CellSet.cell_labels`), so small cells lying on large ones stay visible; its
  ``features`` follow napari's convention (row i = label i, a ``label`` column, background row 0).
* ``{name} nuclei`` — **Labels**, each nucleus painted with its cell's id (nuclei in no cell: ids above
  every cell id).
* ``{name} cells`` — **Shapes**, one outline per cell, overlaps intact; ``features``: ``cell_id``,
  ``score``, ``area`` (pixels), ``class``, ``n_nuclei``. Its ``metadata["cell_set"]`` holds the cell set
  itself for per-cell measurement and classification.

Several same-sized cell sets (images of one file) stack into one layer each, plane = image.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..cellset import CellSet
from ..geometry import outline
from ..tables import features_for_layer

OVERLAP_RULE = "each pixel belongs to the smallest cell covering it"
NUCLEUS_RULE = "each nucleus has its cell's id; ids above every cell id: no cell"


def cell_table(cell_set: CellSet) -> pd.DataFrame:
    """One row per cell: ``cell_id``, ``score``, ``area``, ``class``, ``n_nuclei``."""
    return pd.DataFrame(
        {
            "cell_id": cell_set.ids.astype(np.int32),
            "score": cell_set.scores.astype(np.float32),
            "area": cell_set.areas,
            "class": pd.Categorical(["cell"] * len(cell_set), categories=["cell"]),
            "n_nuclei": cell_set.nuclei_per_cell().astype(np.int32),
        }
    )


def cell_outlines(cell_set: CellSet) -> list[np.ndarray]:
    """One (row, col) polygon per cell in image coordinates (:func:`~napari_cervix.geometry.outline` of
    its cropped mask), in cell order; a cell too thin for a polygon gets fewer than 3 points."""
    return [outline(crop) + np.array(box[:2], float) for _, box, crop in cell_set]


def layer_tuples(
    cells, name: str = "", place: dict | None = None, *, with_cells: bool = True, with_nuclei: bool = True
) -> list[tuple]:
    """``[(data, kwargs, layer_type), …]``: cell Labels, nucleus Labels and cell outline Shapes.

    ``cells``: a :class:`~napari_cervix.cellset.CellSet`, anything holding one as ``.cells`` (an
    :class:`~napari_cervix.instances.InstanceResult`), or a list of same-sized cell sets (stacked, plane =
    position). ``place``: layer geometry (scale, translate, …) applied to every layer. ``with_cells`` /
    ``with_nuclei``: leave out the layers of what a source does not annotate.
    """
    stacked = isinstance(cells, (list, tuple))
    planes = [c if isinstance(c, CellSet) else c.cells for c in (cells if stacked else [cells])]
    if len({c.shape for c in planes}) != 1:
        raise ValueError(f"stacked cell sets must share one image shape; got {sorted({c.shape for c in planes})}")
    place = dict(place or {})
    prefix = f"{name} " if name else ""

    def stack(arrays):
        return np.stack(arrays) if stacked else arrays[0]

    tables = [cell_table(c) for c in planes]
    layers = []
    if with_cells:
        features = {}
        if not stacked:  # row i = label i holds for one plane only: ids repeat across planes
            n_labels = int(planes[0].ids.max(initial=0)) + 1
            features["features"] = features_for_layer(tables[0].rename(columns={"cell_id": "label"}), None, n_labels)
        layers.append(
            (
                stack([c.cell_labels() for c in planes]),
                dict(
                    name=f"{prefix}cell labels",
                    opacity=0.4,
                    visible=False,
                    metadata={"overlap_rule": OVERLAP_RULE},
                    **features,
                    **place,
                ),
                "labels",
            )
        )
    if with_nuclei:
        layers.append(
            (
                stack([c.nucleus_labels() for c in planes]),
                dict(name=f"{prefix}nuclei", opacity=0.7, metadata={"label_rule": NUCLEUS_RULE}, **place),
                "labels",
            )
        )
    if with_cells:
        layers.append(_outline_layer(planes, tables, prefix, place, stacked))
    return layers


def _outline_layer(planes, tables, prefix: str, place: dict, stacked: bool) -> tuple:
    polygons, shown = [], []
    for plane, (cell_set, table) in enumerate(zip(planes, tables)):
        keep = []
        for k, polygon in enumerate(cell_outlines(cell_set)):
            if len(polygon) < 3:
                continue  # a mask too thin for a polygon: its row stays in the metadata table
            polygons.append(np.column_stack([np.full(len(polygon), plane), polygon]) if stacked else polygon)
            keep.append(k)
        shown.append(table.iloc[keep].assign(plane=plane) if stacked else table.iloc[keep])
    features = pd.concat(shown, ignore_index=True)
    kwargs = dict(
        name=f"{prefix}cells",
        shape_type="polygon",
        features=features,
        edge_width=2,
        edge_color="cell_id",
        edge_colormap="turbo",
        face_color="transparent",
        metadata={
            "cell_set": planes if stacked else planes[0],
            "table": pd.concat(tables, keys=range(len(tables))) if stacked else tables[0],
            "overlap_rule": f"{OVERLAP_RULE} (cell labels layer)",
        },
        **place,
    )
    if not polygons:
        # An empty Shapes layer cannot color edges by a feature it has no rows for.
        kwargs.update(edge_color="yellow")
        kwargs.pop("edge_colormap")
    return polygons, kwargs, "shapes"
