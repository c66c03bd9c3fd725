"""npe2 writer: a Labels layer → compressed TIFF, written atomically (no napari import)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io._atomic import atomic_path

LABEL_SUFFIXES = (".tif", ".tiff")


def _compact_labels(data) -> np.ndarray:
    """Labels in the smallest unsigned dtype that holds them (napari hands over int64 arrays)."""
    labels = np.asarray(data)
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers; got dtype {labels.dtype}")
    if labels.size == 0 or labels.min() < 0:
        return labels
    for dtype in (np.uint8, np.uint16, np.uint32):
        if labels.max() <= np.iinfo(dtype).max:
            return labels.astype(dtype)
    return labels


def write_labels(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer hook: save ``data`` as ``path`` (.tif added if missing); [path].

    Written to a temporary file in the same folder and moved into place, so an interrupted save
    never     leaves a truncated TIFF where a good one was.
    """
    import tifffile

    path = Path(path)
    if path.suffix.lower() not in LABEL_SUFFIXES:
        path = path.with_name(path.name + ".tif")
    labels = _compact_labels(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, labels, compression="zlib")
    return [str(path)]
