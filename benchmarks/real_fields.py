"""Nucleus recall at the annotated points of real Pap-smear fields (CRIC), per Bethesda class, as a table.

    nice -n 10 .venv/bin/python benchmarks/real_fields.py [--data ../shared/data] [--model FILE]
        [--instance-model FILE|none] [--score-threshold 0.5] [--complete-nuclei both|off|auto]
        [--no-refine-nuclei]
        [--split val|all] [--scales 0.75 1.5 2.5]
        [--modes given estimated] [--isbi]

On the CRIC validation fields (split by field within groups of equal most severe class, by
:func:`napari_cervix.semantic.data.split_training_samples`: the semantic trainer's split) each annotated
nucleus centre counts as found when a predicted nucleus lies within 4 px of it. Rows: ``segment_semantic``
(nucleus class) and ``segment_instances`` (nucleus masks), the detector alone and with the nuclei it
missed added from the semantic model (its default on color fields, :mod:`napari_cervix.instances.completion`).
Also detections per field (predicted nuclei: 8-connected nucleus components for the semantic model) and
seconds per field.
Only squamous cells are annotated, so detections beyond the points are not all false. Data: CRIC Cervix
(Rezende et al., Sci. Data 8:151, 2021; CC BY 4.0).

``--scales``: every field is also resampled by each factor (the points with it; the tolerance scales too,
so it stays the same distance on the glass) and run once per ``--modes``: ``given`` (``pixel_size_um`` =
CRIC's recorded pixel size / factor), ``estimated`` (no pixel size: estimated from the image) and
``as-is`` (``estimate_scale=False``, the model run on the resampled field as it is). The estimate's
error is printed per scale (median and worst |estimated / true − 1| of the factor to the model's scale).

``--isbi``: a second table with the same models' ISBI validation figures (each model's own validation
images, as ``napari-cervix evaluate`` scores them: cell and nucleus mask AP / AP50 of the instance model,
nucleus Dice of both), so a gain on real fields that costs the benchmark images shows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_cervix.geometry import NUCLEUS, label_components
from napari_cervix.instances.completion import COMPLETE_NUCLEI
from napari_cervix.io.cric import CRIC_CLASSES, read_cric, short_bethesda
from napari_cervix.semantic.data import split_training_samples

#: A point within this distance (pixels) of a predicted nucleus counts as found.
TOLERANCE = 4.0
#: The instance model's rows: label → its ``--complete-nuclei`` choice ("both" prints every row).
COMPLETION_ROWS = {"detector only": "off", "+ semantic completion": "auto"}


def found_at_points(nucleus_mask: np.ndarray, points: np.ndarray, tolerance: float = TOLERANCE) -> np.ndarray:
    """Bool per (row, col) point: a predicted nucleus pixel within ``tolerance`` of it."""
    if not nucleus_mask.any():
        return np.zeros(len(points), bool)
    distance = ndi.distance_transform_edt(~nucleus_mask)
    rows = np.clip(np.round(points[:, 0]).astype(int), 0, nucleus_mask.shape[0] - 1)
    cols = np.clip(np.round(points[:, 1]).astype(int), 0, nucleus_mask.shape[1] - 1)
    return distance[rows, cols] <= tolerance


def semantic_runner(model):
    from napari_cervix.semantic.inference import load_semantic_model, segment_semantic

    loaded = load_semantic_model(model, "rgb")

    def run(image, **scale):
        nuclei, used = segment_semantic(image, loaded, return_scale=True, **scale)
        return nuclei == NUCLEUS, int(label_components(nuclei == NUCLEUS).max()), used

    return run


def instance_runner(
    model, score_threshold: float = 0.5, complete_nuclei: bool | None = None, refine_nuclei: bool = True
):
    from napari_cervix.instances.inference import segment_instances
    from napari_cervix.scale import Scale

    def run(image, **scale):
        result = segment_instances(
            image,
            model,
            score_threshold=score_threshold,
            complete_nuclei=complete_nuclei,
            refine_nuclei=refine_nuclei,
            **scale,
        )
        return result.nuclei_union(), len(result.nucleus_scores), Scale(**result.meta["scale"])

    return run


MODES = {
    "given": lambda pixel, factor: {"pixel_size_um": pixel / factor},
    "estimated": lambda pixel, factor: {},
    "as-is": lambda pixel, factor: {"estimate_scale": False},
}


def score(run, samples, factor: float = 1.0, options: dict | None = None, cric_pixel: float | None = None) -> dict:
    """Found flags per class, detections and seconds per field, and the estimate's error, of the fields
    resampled by ``factor`` and run with the scale ``options``."""
    from napari_cervix.scale import resample

    found: dict[str, list[bool]] = {name: [] for name in CRIC_CLASSES}
    detections, seconds, errors = [], [], []
    for sample in samples:
        image = resample(sample.image, factor)
        started = time.perf_counter()
        nuclei, count, used = run(image, **(options or {}))
        seconds.append(time.perf_counter() - started)
        detections.append(count)
        if used.estimated_factor and cric_pixel and used.pixel_size_um:
            errors.append(abs(used.pixel_size_um / (cric_pixel / factor) - 1))
        hits = found_at_points(nuclei, sample.meta["points"] * factor, TOLERANCE * factor)
        for cls, hit in zip(sample.meta["bethesda"], hits):
            found.setdefault(short_bethesda(cls), []).append(bool(hit))
    return {"found": found, "detections": detections, "seconds": seconds, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument(
        "--model", default="default", help="semantic model: registered name or .safetensors file; 'none' skips it"
    )
    parser.add_argument(
        "--instance-model", default="default", help="instance model: name or .safetensors file; 'none' skips it"
    )
    parser.add_argument(
        "--score-threshold", type=float, default=0.5, help="instance detections kept (segment_instances' default)"
    )
    parser.add_argument(
        "--complete-nuclei",
        choices=("both", *COMPLETION_ROWS.values()),
        default="both",
        help="instance rows: the detector alone ('off'), with the semantic model's completion ('auto', "
        "segment_instances' default: on for these color fields), or both (default)",
    )
    parser.add_argument(
        "--no-refine-nuclei",
        dest="refine_nuclei",
        action="store_false",
        help="instance rows: the detector's own nucleus masks (segment_instances' default redraws them on "
        "the semantic model's nucleus probability)",
    )
    parser.add_argument("--split", choices=("val", "all"), default="val")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scales", type=float, nargs="*", default=[], help="also run the fields resampled by these")
    parser.add_argument("--modes", nargs="+", choices=tuple(MODES), default=["given", "estimated"])
    parser.add_argument("--max-fields", type=int, help="only the first N fields (quick looks)")
    parser.add_argument("--isbi", action="store_true", help="also print the models' ISBI validation figures")
    args = parser.parse_args()

    samples = read_cric(Path(args.data) / "cric_fields", pseudo_masks=False)
    if args.split == "val":
        samples = split_training_samples([(s, False) for s in samples], args.val_fraction, args.seed)[1]
    samples = samples[: args.max_fields]
    print(f"{len(samples)} CRIC fields ({args.split}), {sum(len(s.meta['points']) for s in samples)} annotated cells")
    runners = {} if args.model == "none" else {f"segment_semantic ({args.model})": semantic_runner(args.model)}
    try:
        from napari_cervix.instances.model import require_backend

        if args.instance_model != "none":
            require_backend("auto")
            for completion, choice in COMPLETION_ROWS.items():
                if args.complete_nuclei not in ("both", choice):
                    continue
                label = f"segment_instances ({args.instance_model}, score ≥ {args.score_threshold:g}, {completion})"
                runners[label] = instance_runner(
                    args.instance_model,
                    args.score_threshold,
                    COMPLETE_NUCLEI[choice],
                    args.refine_nuclei,
                )
    except Exception as err:  # InstancesUnavailable, or mmcv's ops failing to load
        print(f"segment_instances skipped: {err}")

    from napari_cervix.registry import read_card, resolve

    cric_pixel = read_card(resolve("default", "semantic", "rgb")[0]).input.pixel_size_um
    header = " | ".join(f"{c} (n)" for c in CRIC_CLASSES)
    print(f"| model | field scale | recall all (n) | {header} | detections / field | s / field | estimate error |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in CRIC_CLASSES) + " | --- | --- | --- |")

    def cell(hits):
        return f"{np.mean(hits):.3f} ({len(hits)})" if hits else "– (0)"

    for label, run in runners.items():
        runs = [("1× (estimated)", 1.0, {})]
        if cric_pixel:
            runs += [(f"{f:g}× ({mode})", f, MODES[mode](cric_pixel, f)) for f in args.scales for mode in args.modes]
        for what, factor, options in runs:
            result = score(run, samples, factor, options, cric_pixel)
            every = [hit for hits in result["found"].values() for hit in hits]
            per_class = " | ".join(cell(result["found"].get(c, [])) for c in CRIC_CLASSES)
            errors = result["errors"]
            error = f"{np.median(errors):.1%} (max {np.max(errors):.1%})" if errors else "–"
            print(
                f"| {label} | {what} | {cell(every)} | {per_class} | {np.mean(result['detections']):.1f} | "
                f"{np.mean(result['seconds']):.2f} | {error} |",
                flush=True,
            )
    if args.isbi:
        isbi_table(Path(args.data), args.model, args.instance_model)


def isbi_table(data: Path, semantic_model: str, instance_model: str) -> None:
    """The models' ISBI validation figures (their own validation images)."""
    from napari_cervix.registry import resolve

    sets = {
        "ISBI 2014 synthetic": [f"isbi2014:{data}/isbi2014_synthetic"],
        "ISBI real EDF frames": [f"edf-nuclei:{data}/isbi2014_edf", f"isbi2015:{data}/isbi2015_cells"],
    }
    print("\n| model | ISBI validation data | cell AP | cell AP50 | nucleus AP | nucleus AP50 | nucleus Dice |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    if semantic_model != "none":
        from napari_cervix.semantic.evaluate import evaluate_semantic

        model = resolve(semantic_model, "semantic", "rgb")[0] if semantic_model == "default" else semantic_model
        for label, specs in sets.items():
            dice = evaluate_semantic(model, specs, log=lambda *a: None)["dice"]["nucleus"]
            print(f"| segment_semantic ({semantic_model}) | {label} | – | – | – | – | {dice:.3f} |", flush=True)
    if instance_model != "none":
        from napari_cervix.instances.evaluate import evaluate_instances

        for label, specs in sets.items():
            found = evaluate_instances(instance_model, specs[-1:], log=lambda *a: None)  # sets with cell masks
            cell, nucleus = (found["per_category"][c] for c in ("cell", "nucleus"))
            dice = found["nucleus_dice"]
            print(
                f"| segment_instances ({instance_model}) | {label} | {cell['AP']:.3f} | {cell['AP50']:.3f} | "
                f"{nucleus['AP']:.3f} | {nucleus['AP50']:.3f} | {dice:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
