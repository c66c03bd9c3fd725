"""Instance training targets for the CRIC training fields (points only, no masks), written as a COCO file.

    nice -n 10 .venv/bin/python scripts/cric_instance_targets.py [--data ../shared/data] [--out runs/cric_inst]

Then train on it beside ISBI: ``napari-cervix train instances ... coco:runs/cric_inst/coco.json``.

CRIC marks squamous nuclei by their centre, so every instance target here is a pseudo-label, made at the
instance model's pixel size (each field resampled from CRIC's recorded pixel size to the model's):

* **nuclei**: the point pseudo-masks (:func:`napari_cervix.pseudo_labels.point_nuclei`) at the annotated
  points — the abnormal nuclei the shipped model misses — plus every nucleus of the colour semantic model
  (recall 0.99 at the points) that no point claims (:func:`~napari_cervix.pseudo_labels.complete_nuclei`):
  leukocytes and unannotated epithelial nuclei are nuclei too; left out, they would teach the detector
  that they are background;
* **cells**: the shipped instance model's own cells (score ≥ ``--cell-score``), so what it knows about
  cells on real fields is kept, plus, for each annotated point in none of them, its share of the semantic
  foreground (cytoplasm + nucleus) split between the nuclei by distance, within ``MAX_CELL_RADIUS_UM``
  (:func:`~napari_cervix.pseudo_labels.nearest_nucleus_cells`).

Only the training side of the semantic trainer's split (:func:`split_training_samples`) is written, so
the validation fields of ``benchmarks/real_fields.py`` stay unseen. Data: CRIC Cervix (Rezende et al.,
Sci. Data 8:151, 2021; CC BY 4.0). Written under ``runs/`` (ignored): never commit or ship it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_cervix.instances.completion import MAX_CELL_RADIUS_UM


def field_targets(sample, semantic, detector, cric_pixel: float, model_pixel: float, cell_score: float):
    """(gray image at the model's pixel size, CellSet of cells + nuclei, counts) for one CRIC field."""
    from napari_cervix.cellset import CellSet, Masks
    from napari_cervix.geometry import CYTOPLASM, NUCLEUS
    from napari_cervix.instances.inference import segment_instances
    from napari_cervix.instances.model import prepare_gray
    from napari_cervix.pseudo_labels import complete_nuclei, nearest_nucleus_cells, nuclear_stain, point_nuclei
    from napari_cervix.scale import resample, resize_labels
    from napari_cervix.semantic.inference import segment_semantic

    factor = cric_pixel / model_pixel
    gray = np.clip(resample(prepare_gray(sample.image), factor), 0, 255).astype(np.uint8)
    shape = gray.shape[:2]
    points = point_nuclei(nuclear_stain(sample.image), sample.meta["points"])
    classes = segment_semantic(sample.image, semantic, pixel_size_um=cric_pixel)
    nuclei = complete_nuclei(resize_labels(points, shape), resize_labels(classes, shape) == NUCLEUS)
    foreground = np.isin(resize_labels(classes, shape), (CYTOPLASM, NUCLEUS))

    found = segment_instances(gray, detector, score_threshold=cell_score, pixel_size_um=model_pixel).cells
    model_cells = found.cells
    covered = model_cells.union()
    basins = nearest_nucleus_cells(foreground, nuclei, MAX_CELL_RADIUS_UM / model_pixel)
    centres = np.round(sample.meta["points"] * factor).astype(int)
    centres = np.clip(centres, 0, np.array(shape) - 1)
    # Point i's pseudo-nucleus is label i of the nuclei, and so of their cells.
    uncovered = [point for point, (row, col) in enumerate(centres, start=1) if not covered[row, col]]
    extra, _ = Masks.from_stack((basins == point for point in uncovered), shape)  # empty basins left out
    nucleus_masks, _ = Masks.from_labels(nuclei)
    cells = CellSet(Masks.concatenate([model_cells, extra]), nuclei=nucleus_masks)
    counts = {"model_cells": len(model_cells), "point_cells": len(extra), "nuclei": len(nucleus_masks)}
    return gray, cells, counts


def main() -> None:
    from napari_cervix.instances.model import load_detector
    from napari_cervix.io.coco import write_coco
    from napari_cervix.io.cric import read_cric
    from napari_cervix.io.sample import CellSample
    from napari_cervix.registry import read_card, resolve
    from napari_cervix.semantic.data import split_training_samples
    from napari_cervix.semantic.inference import load_semantic_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--out", default="runs/cric_inst")
    parser.add_argument("--cell-score", type=float, default=0.5)
    parser.add_argument("--max-fields", type=int)
    args = parser.parse_args()

    samples = read_cric(Path(args.data) / "cric_fields", pseudo_masks=False)
    train = split_training_samples([(s, False) for s in samples], 0.2, 0)[0][: args.max_fields]
    semantic = load_semantic_model("default", "rgb")
    detector = load_detector("default")
    cric_pixel = read_card(resolve("default", "semantic", "rgb")[0]).input.pixel_size_um
    model_pixel = detector.meta["input"]["pixel_size_um"]
    print(f"{len(train)} CRIC training fields, {cric_pixel} → {model_pixel} µm/px", flush=True)
    out, totals, written = Path(args.out), {}, []
    for index, sample in enumerate(train, start=1):
        started = time.perf_counter()
        gray, cells, counts = field_targets(sample, semantic, detector, cric_pixel, model_pixel, args.cell_score)
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
        written.append(CellSample(image=gray, cells=cells, nuclei=cells.nuclei.union(), name=sample.name))
        print(f"{index}/{len(train)} {sample.name} {counts} {time.perf_counter() - started:.1f} s", flush=True)
    write_coco(written, out / "coco.json")
    (out / "targets.json").write_text(json.dumps({"fields": len(written), **totals, "args": vars(args)}, indent=1))
    print(f"wrote {out / 'coco.json'}: {len(written)} fields, {totals}")


if __name__ == "__main__":
    main()
