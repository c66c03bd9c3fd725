"""Fit the shipped Bethesda classifier on every CRIC field and write it with the cross-validated operating point.

    nice -n 10 .venv/bin/python benchmarks/bethesda_cv.py            # first: the CV, writes runs/bethesda/cv.json
    nice -n 10 .venv/bin/python scripts/train_bethesda.py --out runs/bethesda/bethesda-boost-rgb.safetensors
    python scripts/ship_weights.py runs/bethesda/bethesda-boost-rgb.safetensors bethesda-boost-rgb \
        --description "…" --default-for rgb

The trees are fitted on all 148 fields with the kind's recipe (the detections described by the CV run,
cached in ``--cache``); the calibration and the ``reviewable`` threshold are the ones the cross-validation
chose on out-of-fold predictions, and its figures go into the card's validation record.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_cervix.grading.context import reference_name
from napari_cervix.grading.train import field_windows, fit_on_fields, grading_inputs, recipe, training_pairs


def main() -> None:
    from napari_cervix.io.cric import read_cric

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--cache", default="runs/bethesda")
    parser.add_argument("--cv", default="runs/bethesda/cv.json", help="the cross-validation's result")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    cv = json.loads(Path(args.cv).read_text())
    config = recipe(cv.get("arch", "bethesda_boost"))  # the kind the cross-validation measured
    samples = read_cric(Path(args.data) / "cric_fields", pseudo_masks=False)
    fields, descriptors, recolored = grading_inputs(config, samples, args.cache)  # the CV's cache
    windows = None
    if config.network_size:
        windows = field_windows(samples, fields, args.cache, config.size, config.network_size)
    pairs = training_pairs(fields, descriptors, recolored, range(len(fields)))
    metadata = {
        "calibration": cv["calibration"],
        "training": {
            "data": ["CRIC Cervix fields (Rezende et al., Sci. Data 8:151, 2021; CC BY 4.0), all 148"],
            "detector": "default semantic model (unet-mobilenet_v2-rgb) + cells_from_semantic",
            "recolored_copies": int(config.extra.get("recolored_copies", 0)),  # another lab's colors, per field
            # cells read relative to their field's reference cells (grading/context.py), by name
            "field_context": reference_name(config.extra.get("field_context")) or False,
        },
        "validation": {
            "images": [],
            "figures": {k: v for k, v in cv.items() if k not in ("calibration", "threshold")},
            "method": "field-grouped 5-fold CV on the 148 CRIC fields, end to end (benchmarks/bethesda_cv.py)",
        },
        "operating_point": {"target_recall": cv["target_recall"], "chosen_on": "out-of-fold predictions"},
    }
    model, y = fit_on_fields(config, pairs, windows=windows, metadata=metadata)
    model.metadata["training"]["cells"] = int(len(y))
    model.threshold = float(cv["threshold"])
    sha = model.save(args.out)
    print(f"{args.out}: {len(y)} training detections, threshold {model.threshold:.4f}, sha256 {sha}")


if __name__ == "__main__":
    main()
