"""Descriptors relative to the field's own cells: how a cytologist reads a nucleus.

The Bethesda criteria are relative: ASC-US and LSIL nuclei are 2.5–3× the area of a *normal intermediate
nucleus of the same smear*, hyperchromasia is darker than its neighbours. Another lab's stain, scanner and
magnification move the absolute colors and sizes; they move the whole field alike. So each detection's
descriptors are given twice to the trees: as measured, and minus the field's reference — the median
descriptor of the field's detections that look like its normal intermediate cells (every detection of the
image graded together: a field, or a slide's tile). Which detections those are is named in the grader's
card (``field_context``), one of :data:`REFERENCES`:

* ``"intermediate"`` (the default since session 20): cells at least as large as the field's median
  detection's (``cell_fraction`` of the window; leukocytes and debris, often most of a field's detections,
  have little or no cytoplasm), and of those the half with the lower N/C ratio. A field can be a third
  ASC-US or LSIL cells, whose enlarged nuclei pulled the median of all large cells towards them and made
  each abnormal cell look less so; normal intermediate cells have the smallest N/C ratios of the smear;
* ``"large_cells"``: the large cells alone (session 19's graders, whose cards say ``True``).

A field with few detections has a noisy median, and a lone cell would be compared with itself (every
relative descriptor zero). The reference is therefore shrunk towards the training fields' typical one,
as if :data:`TYPICAL_WEIGHT` typical detections had joined the field.
"""

from __future__ import annotations

import numpy as np

from ..cells.descriptors import descriptor_names

#: The typical training field's reference counts as this many detections of a field (CRIC's fields have
#: 6–414 detections, median 88: the field's own median dominates from a few dozen detections on).
TYPICAL_WEIGHT = 10
_CELL_FRACTION = descriptor_names().index("cell_fraction")
_NC_RATIO = descriptor_names().index("nc_ratio")


def large_cells(descriptors: np.ndarray) -> np.ndarray:
    """The detections (rows of N × D descriptors) whose cell is at least as large as the field's median."""
    descriptors = np.asarray(descriptors, np.float32)
    if len(descriptors) == 0:
        return descriptors
    cell = descriptors[:, _CELL_FRACTION]
    return descriptors[cell >= np.median(cell)]


def intermediate_looking(descriptors: np.ndarray) -> np.ndarray:
    """Of the :func:`large_cells`, the half with the lower N/C ratio (all of them when fewer than two)."""
    large = large_cells(descriptors)
    if len(large) < 2:
        return large
    ratio = large[:, _NC_RATIO]
    return large[ratio <= np.median(ratio)]


#: The field references a grader can name in its card (``field_context``), by name.
REFERENCES = {"intermediate": intermediate_looking, "large_cells": large_cells}
DEFAULT_REFERENCE = "intermediate"


def reference_name(setting) -> str | None:
    """The :data:`REFERENCES` name of a card's or recipe's ``field_context`` setting: None (no context) for
    a false one, ``"large_cells"`` for ``True`` (the cards of session 19's graders)."""
    if not setting:
        return None
    if setting is True:
        return "large_cells"
    if setting not in REFERENCES:
        raise ValueError(f"unknown field reference {setting!r}; known: {', '.join(REFERENCES)}")
    return str(setting)


def field_reference(
    descriptors: np.ndarray, typical: np.ndarray, reference: str = DEFAULT_REFERENCE, weight: float = TYPICAL_WEIGHT
) -> np.ndarray:
    """The reference descriptor (D) of one field's detections (N × D): the median of its ``reference``
    detections (:data:`REFERENCES`), shrunk towards ``typical`` with ``weight`` pseudo-detections."""
    descriptors = REFERENCES[reference](descriptors)
    n = len(descriptors)
    if n == 0:
        return np.asarray(typical, np.float32)
    return ((n * np.median(descriptors, axis=0) + weight * np.asarray(typical)) / (n + weight)).astype(np.float32)


def typical_reference(per_field: list[np.ndarray], reference: str = DEFAULT_REFERENCE) -> np.ndarray:
    """The training fields' typical reference (D): the median of their per-field medians of the
    ``reference`` detections (fields without detections left out), so each field counts once whatever its
    number of detections."""
    medians = [np.median(REFERENCES[reference](d), axis=0) for d in per_field if len(d)]
    if not medians:
        raise ValueError("no field has detections: nothing to take a typical reference from")
    return np.median(np.stack(medians), axis=0).astype(np.float32)


def in_field_context(descriptors: np.ndarray, typical: np.ndarray, reference: str = DEFAULT_REFERENCE) -> np.ndarray:
    """N × 2D: each detection's descriptors, then the same minus the field's :func:`field_reference`
    (``descriptors``: all of one field's detections)."""
    descriptors = np.asarray(descriptors, np.float32)
    relative = descriptors - field_reference(descriptors, typical, reference)
    return np.concatenate([descriptors, relative], axis=1)
