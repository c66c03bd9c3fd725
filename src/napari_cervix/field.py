"""One call from a microscope field to graded cells: nuclei and cells, measurements, a Bethesda grade per
cell, and the field's triage — the function behind the *Analyze field* widget, the console
(``nc.analyze_field``), ``napari-cervix analyze IMAGE… --out DIR`` and the demo.

Steps (each a progress step, so napari shows progress and can cancel between them):

1. **nuclei and cells**: the default semantic model for the image's color, then one cell per nucleus
   component grown over the foreground (:func:`~napari_cervix.semantic.postprocess.cells_from_semantic`;
   on real fields it finds 99 % of CRIC's annotated nuclei, where the instance model finds half), or the
   instance model's overlapping cells when ``cells="instances"``;
2. **measurements** of every cell (:func:`~napari_cervix.cells.features.measure_cells`);
3. **Bethesda grade** of every cell with a nucleus (the registry's ``grading`` default for color input:
   six classes + not a squamous cell): ``bethesda_class``, ``p_<class>``, ``p_abnormal``, ``reviewable``
   (``p_abnormal`` at the model's operating point) and ``squamous_score`` (1 − P(not a squamous cell));
4. optionally the **Herlev** 7-class output of the classifier default for the image (``herlev_class``,
   ``herlev_p_abnormal``), a secondary opinion for isolated cells like Herlev's;
5. **triage** of the field (:func:`triage`): its score is the largest ``p_abnormal``, its decision the
   most severe grade among reviewable cells.

Gray images have no trained Bethesda grader (Pap stain color is what it reads); they get the
measurements and the Herlev columns, and the summary says why the grade is missing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .classes import BETHESDA_ABNORMAL, BETHESDA_GRADES, BETHESDA_HIGH_GRADE, NOT_SQUAMOUS
from .geometry import grow_box
from .imaging import ImageError, check_image, color_kind
from .scale import Scale, resample, resize_labels
from .tiling import TileProgress

#: Triage decisions, least to most urgent.
TRIAGE_DECISIONS = ("negative", "review: low grade", "review: high grade")
CELL_SOURCES = ("semantic", "instances")


@dataclass
class FieldResult:
    """What :func:`analyze_field` found: the cells (sparse cell set with linked nuclei), the nucleus
    labels, the semantic labels (None for ``cells="instances"``), one table row per cell and the summary
    (counts per class, triage, models)."""

    cells: object  # CellSet
    nuclei: np.ndarray
    semantic: np.ndarray | None
    table: pd.DataFrame
    summary: dict = field(default_factory=dict)


def triage(table: pd.DataFrame) -> dict:
    """Field-level score (the largest ``p_abnormal``), the most severe reviewable grade and the decision:
    any reviewable high-grade cell (ASC-H, HSIL, SCC) → "review: high grade", any other reviewable cell →
    "review: low grade", else "negative"."""
    graded = table.dropna(subset=["p_abnormal"]) if "p_abnormal" in table else table.iloc[:0]
    if graded.empty:
        return {"score": None, "decision": None, "most_severe": None, "reviewable_cells": 0}
    flagged = graded[graded["reviewable"].astype(bool)]
    grades = [g for g in flagged["bethesda_class"].astype(str) if g in BETHESDA_GRADES]
    most_severe = max(grades, key=BETHESDA_GRADES.index) if grades else None
    if most_severe in BETHESDA_HIGH_GRADE:
        decision = TRIAGE_DECISIONS[2]
    elif flagged.empty:
        decision = TRIAGE_DECISIONS[0]
    else:
        decision = TRIAGE_DECISIONS[1]
    high = [f"p_{c}" for c in BETHESDA_HIGH_GRADE]
    return {
        "score": float(graded["p_abnormal"].max()),
        "high_grade_score": float(graded[high].sum(axis=1).max()),
        "decision": decision,
        "most_severe": most_severe,
        "reviewable_cells": int(len(flagged)),
    }


def grade_cells(image, cells, nuclei, grader, *, measure: bool = True) -> pd.DataFrame:
    """The Bethesda grade columns of every cell (``bethesda_class``, ``p_<class>``, ``p_abnormal``,
    ``reviewable``, ``squamous_score``), with the measurements unless ``measure=False``; a cell without a
    nucleus gets no grade. ``grader``: a loaded grader (:func:`~napari_cervix.cells.classifier.load_grader`).
    The one grading step of fields and slide tiles."""
    from .cells.classify import classify_cells_steps
    from .tiling import run_to_end

    table = run_to_end(classify_cells_steps(image, cells, nuclei, grader, measure=measure))
    table = table.rename(columns={"predicted_class": "bethesda_class", "p_reviewable": "p_abnormal"})
    table["squamous_score"] = 1.0 - table.pop(f"p_{NOT_SQUAMOUS}")
    if "nucleus_count" in table:
        has_nucleus = table["nucleus_count"].to_numpy() > 0
    else:
        nuclei_of = dict(zip(cells.ids.tolist(), cells.nuclei_per_cell().tolist()))
        has_nucleus = np.array([nuclei_of[int(k)] > 0 for k in table["label"]], bool)
    return _ungrade_cells_without_nucleus(table, has_nucleus)


def _ungrade_cells_without_nucleus(graded: pd.DataFrame, has_nucleus: np.ndarray) -> pd.DataFrame:
    """Rows without a nucleus lose their grade (NaN probabilities, no class, not reviewable): the grader
    reads the nucleus, so a window around a cell's centroid alone would be graded on nothing it knows."""
    grade_cols = [c for c in graded.columns if c.startswith("p_") or c == "squamous_score"]
    graded.loc[~has_nucleus, grade_cols] = np.nan
    graded.loc[~has_nucleus, "reviewable"] = False
    classes = graded["bethesda_class"].astype(object).where(has_nucleus, None)
    graded["bethesda_class"] = pd.Categorical(classes, categories=[*BETHESDA_GRADES, NOT_SQUAMOUS])
    return graded


def _cell_centroids(cell_set) -> np.ndarray:
    """Centroid (y, x) of each cell's mask in the cell set's pixels (N×2)."""
    centres = np.zeros((len(cell_set), 2))
    for i, (_, (y0, x0, _, _), mask) in enumerate(cell_set):
        ys, xs = np.nonzero(mask)
        centres[i] = (y0 + ys.mean(), x0 + xs.mean()) if len(ys) else (y0, x0)
    return centres


def _find_cells(image, cells: str, semantic_model, instance_model, pixel_size_um, estimate_scale, score_threshold):
    """(the Scale of the work, cell set, nucleus labels, semantic labels or None), all on the grid of the
    image resampled to the semantic model's pixel size."""
    from .cellset import CellSet
    from .semantic.inference import segment_semantic_at_model_scale_steps, semantic_scale
    from .tiling import run_to_end

    if cells == "instances":
        from .instances.inference import segment_instances

        scale = semantic_scale(image, semantic_model, pixel_size_um, estimate=estimate_scale)
        work = resample(image, scale.factor) if scale.resamples else image
        # The work image is at the semantic model's pixel size (when either size is known).
        work_pixel = None if scale.pixel_size_um is None else scale.pixel_size_um / scale.factor
        found = segment_instances(
            work,
            instance_model,
            score_threshold=score_threshold,
            pixel_size_um=work_pixel,
            estimate_scale=False,
            semantic_model=semantic_model,
        )
        return scale, found.cells, found.nucleus_labels(), None
    from .semantic.postprocess import cells_from_semantic

    steps = segment_semantic_at_model_scale_steps(
        image, semantic_model, pixel_size_um=pixel_size_um, estimate_scale=estimate_scale
    )
    semantic, scale = run_to_end(steps)
    cell_labels, nuclei = cells_from_semantic(semantic)
    return scale, CellSet.from_labels(cell_labels, nuclei > 0), nuclei, semantic


def _back_to_input_grid(image, result: FieldResult, scale: Scale) -> FieldResult:
    """A result found at the models' pixel size on the input's own grid: labels resized, the cells
    resized, the measurements taken again on the input's pixels (areas and lengths in its pixels), the
    grades kept."""
    from .cells.features import feature_columns, measure_cells

    shape = image.shape[:2]
    cells = result.cells.resized(shape)
    nuclei = resize_labels(result.nuclei, shape)
    semantic = None if result.semantic is None else resize_labels(result.semantic, shape)
    measured = measure_cells(image, cells, nuclei).set_index("label").reindex(result.table["label"])
    table = result.table.copy()
    for column in feature_columns():
        if column in table and column in measured:
            table[column] = measured[column].to_numpy()
    table.attrs = dict(result.table.attrs)
    return FieldResult(cells, nuclei, semantic, table, result.summary)


def analyze_field_steps(
    image,
    *,
    cells: str = "semantic",
    semantic_model="default",
    instance_model="default",
    grading_model="default",
    herlev_model: str | None = None,
    tta: int | None = None,
    pixel_size_um: float | None = None,
    estimate_scale: bool = True,
    score_threshold: float = 0.5,
    select: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Generator[TileProgress, None, FieldResult]:
    """Generator form of :func:`analyze_field` (yields one progress step per stage, returns the result).

    ``select`` (slide tiles): given the found cells' centroids (N×2, y and x in the input's pixels), which
    to keep (a boolean mask); only those are measured and graded — the cells a tile owns."""
    from .cells.classifier import load_classifier, load_grader
    from .cells.classify import classify_cells_steps
    from .cells.features import measure_cells
    from .registry import RegistryError
    from .tiling import run_to_end

    check_image(image)
    original = image = np.asarray(image)
    if cells not in CELL_SOURCES:
        raise ValueError(f"cells must be one of {CELL_SOURCES}, got {cells!r}")
    color = color_kind(image)
    stages = 4 if herlev_model else 3
    yield TileProgress(0, stages)
    scale, cell_set, nuclei, semantic = _find_cells(
        image, cells, semantic_model, instance_model, pixel_size_um, estimate_scale, score_threshold
    )
    if select is not None and len(cell_set):
        keep = np.asarray(select(_cell_centroids(cell_set) / scale.factor), bool)
        cell_set = cell_set.subset(np.flatnonzero(keep))
    if scale.resamples:
        image = resample(image, scale.factor)  # everything runs at the models' pixel size
    summary: dict = {"cells_from": cells, "color": color, "scale": scale.as_dict()}
    yield TileProgress(1, stages)

    grader = None
    if grading_model is None:
        summary["grading"] = "skipped (grading_model=None)"
    else:
        try:
            grader = load_grader(grading_model, color)
        except RegistryError as err:
            summary["grading"] = f"not available: {err}"
    if grader is not None and tta is not None:
        grader = copy.copy(grader)  # never change the caller's classifier object
        grader.tta = max(1, min(int(tta), 8))
    if grader is not None and len(cell_set):
        table = grade_cells(image, cell_set, nuclei, grader)
        summary["grading_model"] = grader.metadata.get("name") or grader.arch
        summary["operating_point"] = {"p_abnormal": grader.threshold, **grader.metadata.get("operating_point", {})}
    else:
        table = measure_cells(image, cell_set, nuclei)
    yield TileProgress(2, stages)

    if herlev_model and len(cell_set):
        herlev = load_classifier(herlev_model, color)
        extra = run_to_end(classify_cells_steps(image, cell_set, nuclei, herlev, measure=False))
        table["herlev_class"] = extra["predicted_class"].to_numpy()
        table["herlev_p_abnormal"] = extra["p_reviewable"].to_numpy()
        summary["herlev_model"] = herlev.metadata.get("name") or herlev.arch
        yield TileProgress(3, stages)

    summary["cells"] = int(len(table))
    if "bethesda_class" in table:
        counts = table["bethesda_class"].value_counts()
        summary["counts"] = {c: int(counts.get(c, 0)) for c in [*BETHESDA_GRADES, NOT_SQUAMOUS]}
        summary["reviewable"] = {
            c: int(((table["bethesda_class"] == c) & table["reviewable"]).sum()) for c in BETHESDA_ABNORMAL
        }
    summary["triage"] = triage(table)
    table.attrs["triage"] = summary["triage"]  # the table's metadata carries the field's decision too
    result = FieldResult(cell_set, nuclei, semantic, table, summary)
    if scale.resamples:
        result = _back_to_input_grid(original, result, scale)
    yield TileProgress(stages, stages)
    return result


def analyze_field(
    image,
    *,
    cells: str = "semantic",
    semantic_model="default",
    instance_model="default",
    grading_model="default",
    herlev_model: str | None = None,
    tta: int | None = None,
    pixel_size_um: float | None = None,
    estimate_scale: bool = True,
    score_threshold: float = 0.5,
    progress: Callable[[TileProgress], None] | None = None,
) -> FieldResult:
    """Nuclei, cells, measurements, Bethesda grades and triage of one field (gray or RGB, H×W[×3]).

    ``cells``: "semantic" (semantic model + nucleus-seeded watershed; the default) or "instances" (the
    instance model's overlapping cells). ``*_model``: registered names, files or "default" (the registry's
    default for the image's color). ``herlev_model``: also add the Herlev 7-class opinion of that
    classifier ("default" for the image's; None skips it); ``grading_model=None`` skips the grade.
    ``tta``: test-time views of the grader (its card's by default, which is what its figures were
    measured with). ``pixel_size_um``: µm per pixel of
    the field; every model runs at its training pixel size and the results come back on the field's grid
    (measurements in its pixels). None: estimated from the field's nuclei (``estimate_scale=False`` runs
    it as it is); ``summary["scale"]`` reports what was used. ``score_threshold``: the instance model's
    (``cells="instances"`` only). Bad input raises
    :class:`~napari_cervix.imaging.ImageError`; nothing of the caller's is changed.
    """
    from .tiling import run_to_end

    steps = analyze_field_steps(
        image,
        cells=cells,
        semantic_model=semantic_model,
        instance_model=instance_model,
        grading_model=grading_model,
        herlev_model=herlev_model,
        tta=tta,
        pixel_size_um=pixel_size_um,
        estimate_scale=estimate_scale,
        score_threshold=score_threshold,
    )
    return run_to_end(steps, progress)


__all__ = ["FieldResult", "ImageError", "TRIAGE_DECISIONS", "analyze_field", "analyze_field_steps", "triage"]


# ------------------------------------------------------------------------------------------ outputs
#: Display color (RGB in [0, 1]) per grade, green (negative) to red (carcinoma); gray: no squamous cell.
SEVERITY_COLORS = {
    "NILM": (0.20, 0.75, 0.30),
    "ASC-US": (0.95, 0.85, 0.20),
    "LSIL": (1.00, 0.60, 0.10),
    "ASC-H": (0.95, 0.35, 0.10),
    "HSIL": (0.90, 0.10, 0.10),
    "SCC": (0.60, 0.00, 0.45),
    NOT_SQUAMOUS: (0.55, 0.55, 0.55),
}
UNGRADED_COLOR = (0.30, 0.60, 0.95)
#: Image files taken whole as one field by ``napari-cervix analyze`` (TIFFs: when small, see is_field_image).
FIELD_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
#: A TIFF up to this many pixels a side with one resolution level is a field, larger ones are slides.
FIELD_MAX_SIDE = 8192


def is_field_image(path) -> bool:
    """Whether ``napari-cervix analyze`` reads ``path`` as one field (else as a whole slide)."""
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() in FIELD_SUFFIXES:
        return True
    if path.suffix.lower() not in (".tif", ".tiff") or path.name.lower().endswith((".ome.tif", ".ome.tiff")):
        return False
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        height, width = series.shape[:2] if series.shape[-1] in (3, 4) else series.shape[-2:]
        return len(series.levels) == 1 and max(height, width) <= FIELD_MAX_SIDE


def grade_colors(table: pd.DataFrame) -> list[tuple[float, float, float]]:
    """One display color per table row by its Bethesda grade (:data:`SEVERITY_COLORS`)."""
    if "bethesda_class" not in table:
        return [UNGRADED_COLOR] * len(table)
    return [SEVERITY_COLORS.get(str(g), UNGRADED_COLOR) for g in table["bethesda_class"].astype(object)]


def overlay(image, result: FieldResult) -> np.ndarray:
    """RGB uint8: the image with every cell's outline in its grade's color (reviewable cells thicker)."""
    from skimage.segmentation import find_boundaries

    from .cells.crops import to_channels

    rgb = to_channels(np.asarray(image), 3).copy()
    height, width = rgb.shape[:2]
    colors = dict(zip(result.table["label"].astype(int), grade_colors(result.table)))
    flagged = set(result.table["label"][result.table.get("reviewable", pd.Series(False, result.table.index))])
    for index, (cell_id, (y0, x0, y1, x1), _) in enumerate(result.cells):
        # The cell's box and a 2-pixel rim (inside the image): all its boundary needs to see.
        wy0, wx0, wy1, wx1 = grow_box((y0, x0, y1, x1), 2, (height, width))
        mask = result.cells.cells.crop_in(index, (wy0, wx0, wy1, wx1))
        boundary = find_boundaries(mask, mode="thick" if cell_id in flagged else "inner")
        rgb[wy0:wy1, wx0:wx1][boundary] = colors.get(int(cell_id), UNGRADED_COLOR)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def write_field_outputs(image, result: FieldResult, out) -> list[str]:
    """``out/``: ``cells.tif`` (cell labels, smallest cell wins), ``nuclei.tif`` (nucleus labels = their
    cell's id), ``cells.csv`` (the table), ``overlay.png`` and ``summary.json``; each written atomically.
    Returns the file names."""
    import json
    from pathlib import Path

    import imageio.v3 as iio
    import tifffile

    from .io._atomic import atomic_path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    writers = {
        "cells.tif": lambda p: tifffile.imwrite(p, result.cells.cell_labels(), compression="zlib"),
        "nuclei.tif": lambda p: tifffile.imwrite(p, result.cells.nucleus_labels(), compression="zlib"),
        "cells.csv": lambda p: result.table.to_csv(p, index=False),
        "overlay.png": lambda p: iio.imwrite(p, overlay(image, result), extension=".png"),
        "summary.json": lambda p: Path(p).write_text(json.dumps(result.summary, indent=2, default=str)),
    }
    for name, write in writers.items():
        with atomic_path(out / name) as tmp:
            write(tmp)
    return list(writers)
