"""The Bethesda grader on another lab's stain and light: the CV's fold models on recolored CRIC fields.

    nice -n 10 .venv/bin/python benchmarks/bethesda_stain.py [--data ../shared/data] [--cache runs/bethesda]
        [--shifts NAME …] [--out runs/bethesda/stain.json]

Users bring fields stained, lit and white-balanced by their own lab, not CRIC's. Each shift recolors every
CRIC field the way another lab's stain or microscope would — hematoxylin stronger, or weaker with eosin
stronger (their optical densities scaled by colour deconvolution), a warm lamp — and the
whole path runs again on the recolored field: the default semantic model finds the nuclei, cells grow from
them, and each field is graded by the cross-validation's model of its fold (one that never saw it), **at the
calibration and operating point chosen on the unshifted out-of-fold predictions** (what the shipped grader
does for a user from another lab: nobody re-tunes the threshold). Printed per shift: abnormal recall and
specificity at that fixed point, AUC, field-level AUCs, false alarms per NILM-only field and the share of
annotated nuclei detected. Needs (or makes) the caches and fold models of ``benchmarks/bethesda_cv.py``;
each shift's detections and descriptors are cached in ``cache/stain/NAME`` (about 12 min a shift here).
``--extra '{}'`` measures the recipe without white balance and recolored training copies.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from bethesda_cv import EXTRA_HELP, end_to_end, fold_models, operating_point, out_of_fold

from napari_cervix.grading.recolor import Recoloring
from napari_cervix.grading.train import describe_fields, field_folds, grading_inputs, recipe
from napari_cervix.io.cric import read_cric
from napari_cervix.kinds import cell_kind

#: name → another lab's colors (see :class:`~napari_cervix.grading.recolor.Recoloring`).
SHIFTS = {
    "none": None,
    "hematoxylin-x1.3": Recoloring(hematoxylin=1.3),
    "hematoxylin-x0.75-eosin-x1.3": Recoloring(hematoxylin=0.75, eosin=1.3),
    "warm-light": Recoloring(light=(1.0, 0.93, 0.82)),
}


@dataclass
class Recolored:
    """A CRIC sample whose image is recolored on first use (one field in memory at a time)."""

    original: object
    shift: object
    name: str = field(init=False)
    meta: dict = field(init=False)

    def __post_init__(self):
        self.name, self.meta = self.original.name, self.original.meta

    @cached_property
    def image(self) -> np.ndarray:
        return self.shift.on_image(self.original.image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--cache", default="runs/bethesda", help="the cache of benchmarks/bethesda_cv.py")
    parser.add_argument("--shifts", nargs="+", default=list(SHIFTS), choices=list(SHIFTS))
    parser.add_argument("--out", default=None, help="JSON of the figures (default: CACHE/stain.json)")
    parser.add_argument("--extra", type=json.loads, default=None, help=EXTRA_HELP)
    args = parser.parse_args()
    cache = Path(args.cache)
    config = recipe() if args.extra is None else recipe(extra=args.extra)
    kind = cell_kind(config.arch)
    samples = read_cric(Path(args.data) / "cric_fields", pseudo_masks=False)
    fields, descriptors, recolored = grading_inputs(config, samples, cache)
    fold_of = field_folds(fields)
    models = fold_models(cache, config, fields, descriptors, None, fold_of, 5, recolored=recolored)
    parts = out_of_fold(kind, models, fold_of, descriptors)
    calibration, probabilities, threshold = operating_point(kind, models, fold_of, fields, parts, config.target_recall)
    print(f"operating point from the unshifted out-of-fold predictions: p_abnormal ≥ {threshold:.4f}")

    results = {}
    for name in args.shifts:
        if SHIFTS[name] is None:
            results[name] = end_to_end(fields, probabilities, threshold)
            continue
        shifted = [Recolored(s, SHIFTS[name]) for s in samples]
        shifted_fields, shifted_descriptors = describe_fields(
            shifted, cache / "stain" / name, config.size, config.extra.get("white_balance", False)
        )
        shifted_parts = out_of_fold(kind, models, fold_of, shifted_descriptors)
        shifted_probabilities = [kind.probabilities(models[k], *p, calibration) for p, k in zip(shifted_parts, fold_of)]
        results[name] = end_to_end(shifted_fields, shifted_probabilities, threshold)

    print(
        "\n| recoloring | nuclei detected | abnormal recall | specificity | AUC | field AUC any abnormal / high grade "
        "| false alarms / NILM field |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(
            f"| {name} | {r['detected']:.3f} | {r['recall_abnormal']:.3f} | {r['specificity']:.3f} | {r['auc']:.3f} | "
            f"{r['field_auc_abnormal']:.3f} / {r['field_auc_high_grade']:.3f} | "
            f"{r['false_alarms_per_nilm_field']:.1f} |"
        )
    out = Path(args.out) if args.out else cache / "stain.json"
    out.write_text(json.dumps({"threshold": threshold, "shifts": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
