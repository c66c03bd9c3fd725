"""``napari-cervix demo``: the whole pipeline, headless, on a bundled generated smear.

Writes into ``--out``: the input image, a semantic labels image, a cell labels image, a per-cell CSV
table and an overlay PNG, and prints a short summary (with scores against the smear's exact ground
truth). Every capability that is installed runs: semantic segmentation, instance segmentation (when
instance weights are available: torch + torchvision suffice; otherwise cells come from the semantic
labels by a nucleus-seeded watershed), per-cell measurements and classification; then a color
(Pap-stained-looking) generated field goes through :func:`~napari_cervix.field.analyze_field`, the one call
from a field to graded cells and triage (outputs in ``--out/rgb_field``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .cellset import CellSet
from .cli import Command
from .geometry import NUCLEUS, grow_box

DEMO_SEED = 2014
DEMO_SHAPE = (768, 768)


def demo_smear():
    """The bundled example: a deterministic synthetic smear with exact ground truth."""
    from .synth import generate_smear

    return generate_smear(shape=DEMO_SHAPE, n_cells=(10, 14), seed=DEMO_SEED)


def _overlay(image: np.ndarray, cells, semantic: np.ndarray) -> np.ndarray:
    """Gray image, nuclei tinted, and the outline of every cell — each cell of a cell set drawn on its
    own, so overlapping cells stay visible (a label image: the borders between its labels)."""
    from skimage.color import gray2rgb
    from skimage.segmentation import find_boundaries

    rgb = gray2rgb(image.astype(np.float32) / max(float(image.max()), 1.0))
    nucleus = semantic == NUCLEUS
    rgb[nucleus] = 0.6 * rgb[nucleus] + 0.4 * np.array([0.85, 0.1, 0.45])
    if isinstance(cells, CellSet):
        height, width = cells.shape
        for k, (y0, x0, y1, x1) in enumerate(cells.boxes):
            # The cell's box and one pixel around it (inside the image): all its boundary needs to see.
            wy0, wx0, wy1, wx1 = grow_box((y0, x0, y1, x1), 1, (height, width))
            boundary = find_boundaries(cells.cells.crop_in(k, (wy0, wx0, wy1, wx1)), mode="inner")
            rgb[wy0:wy1, wx0:wx1][boundary] = (0.1, 0.9, 0.3)
    else:
        rgb[find_boundaries(cells, mode="inner")] = (0.1, 0.9, 0.3)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _instances_unavailable_reason() -> str | None:
    """None when instance segmentation can run here, else why not (torchvision or weights missing)."""
    from .registry import RegistryError, default_model

    try:
        from .instances.model import require_backend

        require_backend("auto")  # the torch path: no mmdet/mmcv needed
        default_model("instances")
    except (ImportError, RuntimeError, RegistryError) as err:
        return str(err)
    return None


def run_demo(out: str | Path, log=print) -> dict:
    import imageio.v3 as iio
    import tifffile

    from .api import segment_semantic
    from .metrics import pixel_metrics
    from .semantic.postprocess import cells_from_semantic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sample = demo_smear()
    tifffile.imwrite(out / "smear.tif", sample.image)
    summary: dict = {"image": f"{sample.shape[0]}x{sample.shape[1]} synthetic smear, {len(sample.cells)} cells"}

    t0 = time.perf_counter()
    semantic = segment_semantic(sample.image)
    summary["semantic_seconds"] = round(time.perf_counter() - t0, 2)
    tifffile.imwrite(out / "semantic.tif", semantic)
    scores = pixel_metrics(semantic, sample.semantic_target())
    summary["semantic_vs_truth"] = {
        "mIoU": round(scores["mIoU"], 3),
        "nucleus_dice": round(scores["dice"]["nucleus"], 3),
    }

    cell_set = None
    reason = _instances_unavailable_reason()
    if reason is None:
        from .api import segment_instances

        t0 = time.perf_counter()
        result = segment_instances(sample.image)
        summary["instances_seconds"] = round(time.perf_counter() - t0, 2)
        cell_set, nuclei = result.cells, result.nucleus_labels()
        cell_labels = result.cell_labels()
        summary["cells_from"] = (
            f"instance model {result.meta['model']} on the {result.meta['backend']} backend "
            "(overlapping cells kept in the table)"
        )
    else:
        cell_labels, nuclei = cells_from_semantic(semantic)
        summary["cells_from"] = f"semantic labels + nucleus-seeded watershed (instance model not available: {reason})"
    tifffile.imwrite(out / "cells.tif", cell_labels)
    cells = cell_set if cell_set is not None else cell_labels
    summary["cells_found"] = int(len(cell_set) if cell_set is not None else len(np.unique(cell_labels)) - 1)

    table = _cell_table(sample.image, cells, nuclei, summary)
    table.to_csv(out / "cells.csv", index=False)
    iio.imwrite(out / "overlay.png", _overlay(sample.image, cells, semantic))
    summary["rgb_field"] = _graded_field(out / "rgb_field")
    summary["outputs"] = sorted(p.name for p in out.iterdir())
    return summary


def _graded_field(out: Path) -> dict:
    """A color generated field through analyze_field: its counts per grade and triage (files in ``out``)."""
    from .field import analyze_field, write_field_outputs
    from .synth import generate_smear

    image = generate_smear(shape=(512, 512), n_cells=(6, 8), seed=DEMO_SEED + 1, rgb=True).image
    t0 = time.perf_counter()
    field = analyze_field(image)
    write_field_outputs(image, field, out)
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        "cells": field.summary["cells"],
        "grading_model": field.summary.get("grading_model", field.summary.get("grading")),
        "counts": field.summary.get("counts"),
        "triage": field.summary["triage"]["decision"],
    }


def _cell_table(image, cells, nuclei, summary):
    """Measurements + classes when a classifier is shipped; else the measurements alone."""
    from .registry import RegistryError

    try:
        from .api import classify_cells

        table = classify_cells(image, cells, nuclei)
        column = next((c for c in ("predicted_class", "class") if c in table.columns), None)
        if column:
            summary["classes"] = table[column].value_counts().to_dict()
        return table
    except (ImportError, RegistryError) as err:  # capability not installed or no classifier shipped
        summary["classification"] = f"not available: {err}"
    from .api import measure_cells

    return measure_cells(image, cells, nuclei)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="output folder (created)")


def _run(args) -> int:
    summary = run_demo(args.out)
    print(json.dumps(summary, indent=2, default=str))
    return 0


COMMANDS = [Command("demo", None, "run the whole pipeline headless on a bundled generated smear", _add_arguments, _run)]
