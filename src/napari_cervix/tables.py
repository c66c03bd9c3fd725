"""Per-cell tables in napari's convention for a Labels layer's ``features``: row i describes label i.

One place for the convention, used by every capability that puts a table on a Labels layer (instance
cells, classified cells), so napari's features table widget, hovering and CSV export line up with the
label values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def features_for_layer(table: pd.DataFrame, existing: pd.DataFrame | None, n_labels: int) -> pd.DataFrame:
    """napari-convention features: one row per label value 0..n_labels-1, row i = label i.

    Labels without a measured cell (the background row 0, unused label values) get empty values. Columns
    of ``existing`` that the table does not produce (added by the user) are kept, matched by their ``label``
    column when they have one, else by row position.
    """
    frame = pd.DataFrame({"label": np.arange(n_labels)})
    frame = frame.merge(table, on="label", how="left")
    if existing is not None and len(existing.columns):
        keep = [c for c in existing.columns if c not in frame.columns]
        if keep:
            if "label" in existing.columns:
                old = existing[["label"] + keep].drop_duplicates("label")
                frame = frame.merge(old, on="label", how="left")
            else:
                old = existing[keep].reset_index(drop=True).reindex(range(n_labels))
                frame = pd.concat([frame, old], axis=1)
    return frame
