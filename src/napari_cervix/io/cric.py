"""CRIC Cervix fields (Rezende et al., Sci. Data 8:151, 2021): RGB Papanicolaou fields whose squamous
cells are marked by one point at the nucleus centre and a Bethesda class; no masks.

Layout: ``images/<id>.jpg`` and ``cells.csv`` with columns ``image, cell_id, bethesda, x, y`` (x = column,
y = row, pixels of the image file). Each field becomes a :class:`CellSample` with

* ``meta["points"]``: N×2 float (row, col) nucleus centres, ``meta["bethesda"]``: their classes (the
  CSV's spelling), ``meta["cell_ids"]``, ``meta["stratum"]`` (the most severe class, for the split);
* ``nuclei``: nucleus pseudo-masks grown from the points (:mod:`napari_cervix.pseudo_labels`), and
  ``meta["semantic_target"]``: the matching partial-label target (nucleus / known not nucleus / ignore);
* ``partial_annotation=True``: leukocytes and some epithelial cells carry no point.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..classes import BETHESDA_GRADES
from .images import image_files, read_image
from .sample import CellSample

CELLS_CSV = "cells.csv"
CSV_COLUMNS = ("image", "cell_id", "bethesda", "x", "y")
#: The CSV's long name of the negative class, and the short one used in tables.
NILM_LONG, NILM = "Negative for intraepithelial lesion", "NILM"
#: Bethesda classes of the squamous cells, least to most severe (short names).
CRIC_CLASSES = BETHESDA_GRADES


def short_bethesda(name: str) -> str:
    """``NILM`` for the CSV's long negative class, other classes unchanged."""
    return NILM if name == NILM_LONG else name


def most_severe(classes) -> str:
    """The most severe Bethesda class among ``classes`` (short names; ``NILM`` when none): fields are
    split for validation within groups of equal most severe class, so the rare abnormal classes are
    validated too."""
    ranks = [CRIC_CLASSES.index(short_bethesda(c)) for c in classes if short_bethesda(c) in CRIC_CLASSES]
    return CRIC_CLASSES[max(ranks, default=0)]


def read_cric_points(csv_path) -> dict[str, list[dict]]:
    """Rows of ``cells.csv`` grouped by image file name; ValueError naming the file and row when bad."""
    csv_path = Path(csv_path)
    by_image: dict[str, list[dict]] = {}
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            try:
                entry = {
                    "cell_id": row["cell_id"],
                    "bethesda": row["bethesda"],
                    "x": float(row["x"]),
                    "y": float(row["y"]),
                }
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{csv_path} line {line}: bad x/y ({exc})") from exc
            by_image.setdefault(row["image"], []).append(entry)
    return by_image


def read_cric(folder, pseudo_masks: bool = True) -> list[CellSample]:
    """One sample per image of ``folder/images`` (fields without annotated cells get no points).

    ``pseudo_masks=False`` skips growing the nucleus pseudo-masks (about 0.5 s a field) when only the
    points are needed, e.g. to measure recall at them.
    """
    folder = Path(folder)
    csv_path, images_dir = folder / CELLS_CSV, folder / "images"
    for needed in (csv_path, images_dir):
        if not needed.exists():
            raise FileNotFoundError(f"{folder}: a CRIC folder needs {needed}")
    rows = read_cric_points(csv_path)
    files = image_files(images_dir)
    unknown = sorted(set(rows) - {p.name for p in files})
    if unknown:
        raise FileNotFoundError(f"{csv_path}: annotates {len(unknown)} image(s) not in {images_dir}, e.g. {unknown[0]}")
    samples = []
    for path in files:
        image = read_image(path)
        if image.ndim != 3:
            raise ValueError(f"{path}: CRIC fields are RGB; this image is gray")
        cells = rows.get(path.name, [])
        points = np.array([[c["y"], c["x"]] for c in cells], np.float32).reshape(-1, 2)
        height, width = image.shape[:2]
        outside = (points[:, 0] < 0) | (points[:, 0] >= height) | (points[:, 1] < 0) | (points[:, 1] >= width)
        if outside.any():
            raise ValueError(
                f"{csv_path}: {int(outside.sum())} point(s) of {path.name} lie outside its {height}×{width}"
            )
        meta = {
            "dataset": "cric",
            "annotation": str(csv_path),
            "points": points,
            "bethesda": [c["bethesda"] for c in cells],
            "cell_ids": [c["cell_id"] for c in cells],
            "stratum": most_severe(c["bethesda"] for c in cells),
        }
        nuclei = None
        if pseudo_masks:
            from ..pseudo_labels import point_training_target

            nuclei, meta["semantic_target"] = point_training_target(image, points)
        samples.append(
            CellSample(image=image, nuclei=nuclei, name=path.stem, source=str(path), meta=meta, partial_annotation=True)
        )
    return samples
