"""Nucleus recall at the annotated points of real Pap-smear fields (CRIC), per Bethesda class, as a table.

    nice -n 10 .venv/bin/python benchmarks/real_fields.py [--data ../shared/data] [--model FILE]
        [--instance-model FILE|none] [--split val|all]

On the CRIC validation fields (split by field within groups of equal most severe class, by
:func:`napari_cervix.semantic.data.split_training_samples`: the semantic trainer's split) each annotated
nucleus centre counts as found when a predicted nucleus lies within 4 px of it. Rows: ``segment_semantic``
(nucleus class) and, where mmdet is installed, ``segment_instances`` (nucleus masks). Also detections per
field (predicted nuclei: 8-connected nucleus components for the semantic model) and seconds per field.
Only squamous cells are annotated, so detections beyond the points are not all false. Data: CRIC Cervix
(Rezende et al., Sci. Data 8:151, 2021; CC BY 4.0).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_cervix.geometry import NUCLEUS, label_components
from napari_cervix.io.cric import CRIC_CLASSES, read_cric, short_bethesda
from napari_cervix.semantic.data import split_training_samples

#: A point within this distance (pixels) of a predicted nucleus counts as found.
TOLERANCE = 4.0


def found_at_points(nucleus_mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bool per (row, col) point: a predicted nucleus pixel within :data:`TOLERANCE` of it."""
    if not nucleus_mask.any():
        return np.zeros(len(points), bool)
    distance = ndi.distance_transform_edt(~nucleus_mask)
    rows = np.clip(np.round(points[:, 0]).astype(int), 0, nucleus_mask.shape[0] - 1)
    cols = np.clip(np.round(points[:, 1]).astype(int), 0, nucleus_mask.shape[1] - 1)
    return distance[rows, cols] <= TOLERANCE


def semantic_runner(model):
    from napari_cervix.semantic.inference import load_semantic_model, segment_semantic

    loaded = load_semantic_model(model)

    def run(image):
        nuclei = segment_semantic(image, loaded) == NUCLEUS
        return nuclei, int(label_components(nuclei).max())

    return run


def instance_runner(model):
    from napari_cervix.instances.inference import segment_instances

    def run(image):
        result = segment_instances(image, model)
        return result.nuclei_union(), len(result.nucleus_scores)

    return run


def score(run, samples) -> dict:
    """Found flags per class, detections and seconds per field."""
    found: dict[str, list[bool]] = {name: [] for name in CRIC_CLASSES}
    detections, seconds = [], []
    for sample in samples:
        started = time.perf_counter()
        nuclei, count = run(sample.image)
        seconds.append(time.perf_counter() - started)
        detections.append(count)
        for cls, hit in zip(sample.meta["bethesda"], found_at_points(nuclei, sample.meta["points"])):
            found.setdefault(short_bethesda(cls), []).append(bool(hit))
    return {"found": found, "detections": detections, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--model", default="default", help="semantic model: registered name or .safetensors file")
    parser.add_argument(
        "--instance-model", default="default", help="instance model: name or .safetensors file; 'none' skips it"
    )
    parser.add_argument("--split", choices=("val", "all"), default="val")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    samples = read_cric(Path(args.data) / "cric_fields", pseudo_masks=False)
    if args.split == "val":
        samples = split_training_samples([(s, False) for s in samples], args.val_fraction, args.seed)[1]
    print(f"{len(samples)} CRIC fields ({args.split}), {sum(len(s.meta['points']) for s in samples)} annotated cells")
    runners = {f"segment_semantic ({args.model})": semantic_runner(args.model)}
    try:
        from napari_cervix.instances.model import require_mmdet

        if args.instance_model != "none":
            require_mmdet()
            runners[f"segment_instances ({args.instance_model})"] = instance_runner(args.instance_model)
    except Exception as err:  # InstancesUnavailable, or mmcv's ops failing to load
        print(f"segment_instances skipped: {err}")

    header = " | ".join(f"{c} (n)" for c in CRIC_CLASSES)
    print(f"| model | recall all (n) | {header} | detections / field | s / field |")
    print("| --- | --- | " + " | ".join("---" for _ in CRIC_CLASSES) + " | --- | --- |")
    for label, run in runners.items():
        result = score(run, samples)
        every = [hit for hits in result["found"].values() for hit in hits]

        def cell(hits):
            return f"{np.mean(hits):.3f} ({len(hits)})" if hits else "– (0)"

        per_class = " | ".join(cell(result["found"].get(c, [])) for c in CRIC_CLASSES)
        print(
            f"| {label} | {cell(every)} | {per_class} | {np.mean(result['detections']):.1f} | "
            f"{np.mean(result['seconds']):.2f} |"
        )


if __name__ == "__main__":
    main()
