"""Reviewing the most suspicious cells, without Qt: gallery order, thumbnails, decisions that persist, summary.

A per-cell table (one row per cell: ``label``, ``centroid_y``/``centroid_x``, a predicted class and an
abnormal probability — what :func:`napari_cervix.classify_cells` returns) is reviewed the way screening
systems present it: cells sorted by abnormal probability, filterable by predicted class, shown as
thumbnails centred on each cell and read lazily from the image or slide. The reader's decisions go to a
sidecar file beside the results, one JSON line per decision, appended and flushed to disk, so a crash loses
at most the decision being written and reopening the results restores every decision. The model's columns
are never changed: decisions are added as ``review_decision``, ``reviewed_class``, ``reviewed_at``.

The *Review cells* widget and the HTML report are views of these functions; a notebook can build the same
review with them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .classes import BETHESDA_CLASSES, HERLEV_CLASSES
from .io.slides import read_region

DECISIONS = ("accept", "reject")
REVIEW_COLUMNS = ("review_decision", "reviewed_class", "reviewed_at")
SCORE_COLUMNS = ("p_abnormal", "p_reviewable")  # the first present ranks the gallery
CLASS_COLUMNS = ("bethesda_class", "predicted_class")
ID_COLUMNS = ("label", "cell_id")
#: Classes from least to most severe, per vocabulary; the most severe finding is read off these.
SEVERITY = (("NILM", "ASC-US", "LSIL", "ASC-H", "HSIL", "SCC"), BETHESDA_CLASSES, HERLEV_CLASSES)
#: The Bethesda System's minimum squamous cellularity for an adequate specimen (estimates, not a count).
ADEQUACY_MINIMUM = {"conventional": 8000, "liquid-based": 5000}


class ReviewError(ValueError):
    """A table or decision the review cannot use; the message says which column or value."""


def _first_column(table: pd.DataFrame, names, what: str, required: bool = True) -> str | None:
    for name in names:
        if name in table.columns:
            return name
    if required:
        raise ReviewError(f"the table has no {what} column (expected one of {', '.join(names)})")
    return None


def id_column(table: pd.DataFrame) -> str:
    return _first_column(table, ID_COLUMNS, "cell id")


def class_column(table: pd.DataFrame) -> str:
    return _first_column(table, CLASS_COLUMNS, "predicted class")


def score_column(table: pd.DataFrame) -> str:
    return _first_column(table, SCORE_COLUMNS, "abnormal probability")


# ----------------------------------------------------------------------------------------- gallery
def gallery_order(table: pd.DataFrame, classes=None) -> np.ndarray:
    """Row positions of ``table``, most suspicious first (descending abnormal probability; ties by id),
    keeping only rows whose predicted class is in ``classes`` when given."""
    score = table[score_column(table)].to_numpy(np.float64)
    ids = table[id_column(table)].to_numpy()
    keep = np.ones(len(table), bool)
    if classes is not None:
        wanted = {str(c) for c in ([classes] if isinstance(classes, str) else classes)}
        keep = table[class_column(table)].astype(str).isin(wanted).to_numpy()
    rows = np.flatnonzero(keep)
    score = np.where(np.isnan(score), -np.inf, score)  # unscored cells last
    return rows[np.lexsort((ids[rows], -score[rows]))]


def page(order: np.ndarray, number: int, size: int = 100) -> np.ndarray:
    """The ``number``-th page (from 0) of a gallery order; empty past the end."""
    if size < 1:
        raise ReviewError(f"page size must be at least 1, got {size}")
    return order[number * size : (number + 1) * size]


def _display_uint8(crop: np.ndarray) -> np.ndarray:
    crop = np.asarray(crop)
    if crop.ndim == 2:
        crop = np.repeat(crop[..., None], 3, axis=-1)
    crop = crop[..., :3]
    if crop.dtype == np.uint8:
        return crop
    finite = crop[np.isfinite(crop)] if np.issubdtype(crop.dtype, np.floating) else crop.ravel()
    lo, hi = (np.percentile(finite, (1, 99.5)) if finite.size else (0.0, 1.0)) if crop.size else (0.0, 1.0)
    scaled = (np.nan_to_num(crop.astype(np.float32), nan=lo) - lo) / max(float(hi - lo), 1e-6)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def thumbnail(image, centre_y: float, centre_x: float, size: int = 96) -> np.ndarray:
    """A ``size``×``size``×3 uint8 crop of ``image`` (any H×W or H×W×C array-like: numpy, dask, zarr, a slide
    level) centred on the point; only the crop is read. Outside the image is black."""
    height, width = image.shape[:2]
    y0, x0 = int(round(centre_y)) - size // 2, int(round(centre_x)) - size // 2
    out = np.zeros((size, size, 3), np.uint8)
    top, left = max(y0, 0), max(x0, 0)
    bottom, right = min(y0 + size, height), min(x0 + size, width)
    if bottom > top and right > left:
        region = read_region(image, (slice(top, bottom), slice(left, right)))
        out[top - y0 : bottom - y0, left - x0 : right - x0] = _display_uint8(region)
    return out


def thumbnails(image, table: pd.DataFrame, rows, size: int = 96) -> np.ndarray:
    """N×S×S×3 uint8 thumbnails of the given table rows (positions), centred on each cell's centroid."""
    rows = np.asarray(rows, int)
    ys, xs = table["centroid_y"].to_numpy()[rows], table["centroid_x"].to_numpy()[rows]
    out = np.zeros((len(rows), size, size, 3), np.uint8)
    for k, (y, x) in enumerate(zip(ys, xs)):
        out[k] = thumbnail(image, y, x, size)
    return out


# --------------------------------------------------------------------------------------- decisions
@dataclass(frozen=True)
class Decision:
    cell: int
    decision: str  # "accept" | "reject"
    reviewed_class: str | None
    reviewed_at: str  # ISO 8601, UTC


def sidecar_path(results) -> Path:
    """Where the decisions on ``results`` (a table file or results folder) are kept."""
    results = Path(results)
    return results / "review.jsonl" if results.is_dir() else results.with_name(results.name + ".review.jsonl")


class DecisionLog:
    """Append-only decisions file: one JSON object per line; the latest line for a cell is its decision.

    Each decision is one ``write`` of a whole line followed by ``fsync``: a killed process leaves either the
    whole line or a truncated last line, which :meth:`load` ignores — earlier decisions are never at risk.
    """

    def __init__(self, path):
        self.path = Path(path)

    def record(self, cell: int, decision: str, reviewed_class: str | None = None, *, when: datetime | None = None):
        if decision not in DECISIONS:
            raise ReviewError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        stamp = (when or datetime.now(UTC)).isoformat(timespec="seconds")
        entry = Decision(int(cell), decision, None if reviewed_class is None else str(reviewed_class), stamp)
        line = json.dumps(entry.__dict__, ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line.encode("utf-8"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return entry

    def load(self) -> dict[int, Decision]:
        """The latest decision per cell; a truncated or garbled line (a killed write) is skipped."""
        if not self.path.exists():
            return {}
        latest = {}
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = Decision(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue
            latest[entry.cell] = entry
        return latest


def with_decisions(table: pd.DataFrame, decisions: dict[int, Decision]) -> pd.DataFrame:
    """A copy of ``table`` with the review columns filled from ``decisions`` (the model's columns untouched)."""
    out = table.drop(columns=[c for c in REVIEW_COLUMNS if c in table.columns]).copy()
    ids = out[id_column(out)].to_numpy()
    found = [decisions.get(int(i)) for i in ids]
    out["review_decision"] = pd.Series([d.decision if d else None for d in found], index=out.index, dtype=object)
    out["reviewed_class"] = pd.Series([d.reviewed_class if d else None for d in found], index=out.index, dtype=object)
    out["reviewed_at"] = pd.Series([d.reviewed_at if d else None for d in found], index=out.index, dtype=object)
    return out


# ----------------------------------------------------------------------------------------- summary
def severity(name) -> tuple[int, int]:
    """(vocabulary, rank) of a class name; rank -1 for a name in no vocabulary."""
    for vocabulary, classes in enumerate(SEVERITY):
        if str(name) in classes:
            return vocabulary, classes.index(str(name))
    return -1, -1


def most_severe(names) -> str | None:
    ranked = [(severity(n)[1], str(n)) for n in names if n is not None and severity(n)[1] > 0]
    return max(ranked)[1] if ranked else None


#: Classes that make a slide "high-grade suspicious" (Bethesda ASC-H and above, or their Herlev equivalents).
HIGH_GRADE = {"ASC-H", "HSIL", "SCC", "H-SIL", "moderate_dysplastic", "severe_dysplastic", "carcinoma_in_situ"}


def triage(names) -> str:
    """The field's or slide's triage from the classes of its flagged (or confirmed) cells: "high-grade
    suspicious" if any is ASC-H or worse, "abnormal suspicious" if any other is abnormal, else "negative"."""
    names = [str(n) for n in names if n is not None]
    if any(n in HIGH_GRADE for n in names):
        return "high-grade suspicious"
    if any(severity(n)[1] > 0 and not n.startswith("normal_") for n in names):
        return "abnormal suspicious"
    return "negative"


def reviewable_rows(table: pd.DataFrame) -> np.ndarray:
    return table["reviewable"].fillna(False).astype(bool).to_numpy()


def summarize(table: pd.DataFrame, *, preparation: str = "conventional", squamous_column: str | None = None) -> dict:
    """Counts per predicted and reviewed class, reviewable count, most severe finding, adequacy estimate.

    The squamous-cell count for adequacy is the rows whose ``squamous_column`` is true when the table has
    one, else every row (an overestimate where leukocytes are counted: the summary says which it used).
    """
    if preparation not in ADEQUACY_MINIMUM:
        raise ReviewError(f"preparation must be one of {', '.join(ADEQUACY_MINIMUM)}, got {preparation!r}")
    predicted = table[class_column(table)].astype(str)
    reviewed = table["reviewed_class"] if "reviewed_class" in table.columns else pd.Series([], dtype=object)
    decisions = table["review_decision"] if "review_decision" in table.columns else pd.Series([], dtype=object)
    accepted = table.loc[decisions.reindex(table.index) == "accept", class_column(table)].astype(str)
    confirmed = [r if isinstance(r, str) else p for r, p in zip(reviewed.reindex(accepted.index), accepted)]
    squamous = int(table[squamous_column].astype(bool).sum()) if squamous_column else len(table)
    minimum = ADEQUACY_MINIMUM[preparation]
    return {
        "cells": len(table),
        "per_predicted_class": {k: int(v) for k, v in predicted.value_counts().items()},
        "per_reviewed_class": {k: int(v) for k, v in pd.Series(confirmed, dtype=object).value_counts().items()},
        "reviewable": int(table["reviewable"].astype(bool).sum()) if "reviewable" in table.columns else None,
        "reviewed": int(decisions.notna().sum()),
        "rejected": int((decisions == "reject").sum()),
        "most_severe_predicted": most_severe(predicted),
        "most_severe_confirmed": most_severe(confirmed),
        "triage_predicted": triage(predicted[reviewable_rows(table)] if "reviewable" in table.columns else predicted),
        "triage_confirmed": triage(confirmed) if len(decisions.dropna()) else "not reviewed",
        "adequacy_estimate": {
            "squamous_cells": squamous,
            "counted_from": squamous_column or "all detected cells",
            "preparation": preparation,
            "minimum": minimum,
            "adequate": squamous >= minimum,
            "note": "an estimate from automatic detection, not a count by the reader",
        },
    }


__all__ = [
    "DECISIONS",
    "REVIEW_COLUMNS",
    "Decision",
    "DecisionLog",
    "ReviewError",
    "gallery_order",
    "most_severe",
    "page",
    "sidecar_path",
    "summarize",
    "thumbnail",
    "thumbnails",
    "with_decisions",
]
