"""Record every shipped model's outputs on fixed generated inputs: tests/data/reference_outputs.npz.

tests/test_reference_outputs.py compares the current code against this file, so a refactoring that
changes what a shipped model returns fails CI. Re-run it only when shipped weights change on purpose
(and say so in the commit):

    .venv/bin/python scripts/make_reference_outputs.py          # everything anew
    .venv/bin/python scripts/make_reference_outputs.py --add    # a newly shipped model only
    .venv/bin/python scripts/make_reference_outputs.py --again NAME   # only NAME, retrained and shipped anew

Inputs are generated smears stored in the file itself, so a change to the generator cannot hide a
change of the models. Semantic models run in float32 (bf16 results depend on the CPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "reference_outputs.npz"
SEMANTIC_MODELS = ("unet-mobilenet_v2", "unet-mobilenet_v2-rgb", "residual-se-unet", "2se-unet")
INSTANCE_MODELS = ("imbmdcr-lite",)
CLASSIFIERS = (
    "classifier-ld-resnet-gray",
    "classifier-mask-fusion-gray",
    "classifier-feature-fusion-gray",
    "classifier-descriptor-boost-rgb",
)
GRADERS = ("bethesda-boost-rgb",)  # Bethesda grading (registry task "grading"), on the RGB input
PROBABILITY_STRIDE = 4  # semantic probabilities are stored on every 4th pixel: enough to catch a change


def inputs() -> dict[str, np.ndarray]:
    from napari_cervix.synth import generate_smear

    gray = generate_smear((512, 512), n_cells=8, seed=11)
    wide = generate_smear((640, 832), n_cells=12, seed=12)  # larger than one 512 tile: exercises tiling
    rgb = generate_smear((384, 384), n_cells=6, seed=13, rgb=True)
    out = {}
    for name, sample in (("gray", gray), ("wide", wide), ("rgb", rgb)):
        out[f"input/{name}/image"] = sample.image
        out[f"input/{name}/cells"] = sample.cells.to_stack()
        out[f"input/{name}/nuclei"] = np.asarray(sample.nuclei, bool)
    return out


def record(data: dict[str, np.ndarray], skip: frozenset = frozenset()) -> dict[str, np.ndarray]:
    """Outputs of every shipped model not in ``skip`` (names already recorded, kept as they are)."""
    import napari_cervix as nc
    from napari_cervix.cells.classifier import load_grader

    out = {}
    for model in SEMANTIC_MODELS:
        if model in skip:
            continue
        for name in ("gray", "rgb"):
            labels, probs = nc.segment_semantic(
                data[f"input/{name}/image"], model, precision="float32", return_probabilities=True, estimate_scale=False
            )
            out[f"semantic/{model}/{name}/labels"] = labels
            out[f"semantic/{model}/{name}/probs"] = probs[:, ::PROBABILITY_STRIDE, ::PROBABILITY_STRIDE]
    for model in INSTANCE_MODELS:
        if model in skip:
            continue
        for name in ("gray", "wide"):
            result = nc.segment_instances(
                data[f"input/{name}/image"], model, estimate_scale=False, complete_nuclei=False
            )
            key = f"instances/{model}/{name}"
            out[f"{key}/scores"] = np.asarray(result.scores, np.float32)
            out[f"{key}/areas"] = np.asarray(result.areas, np.int64)
            out[f"{key}/cell_labels"] = result.cell_labels()
            out[f"{key}/nucleus_labels"] = result.nucleus_labels()
            out[f"{key}/nucleus_scores"] = np.asarray(result.nucleus_scores, np.float32)
    for model in CLASSIFIERS:
        if model in skip:
            continue
        for name in ("gray", "rgb"):
            image, cells, nuclei = (data[f"input/{name}/{k}"] for k in ("image", "cells", "nuclei"))
            table = nc.classify_cells(image, cells, nuclei, model=model)
            columns = [c for c in table.columns if c.startswith("p_")]
            key = f"classifier/{model}/{name}"
            out[f"{key}/probabilities"] = table[columns].to_numpy(np.float32)
            out[f"{key}/columns"] = np.array(columns)
            out[f"{key}/predicted"] = table["predicted_class"].astype(str).to_numpy().astype("U")
    for model in GRADERS:
        if model in skip:
            continue
        image, cells, nuclei = (data[f"input/rgb/{k}"] for k in ("image", "cells", "nuclei"))
        table = nc.classify_cells(image, cells, nuclei, model=load_grader(model))
        columns = [c for c in table.columns if c.startswith("p_")]
        out[f"grading/{model}/rgb/probabilities"] = table[columns].to_numpy(np.float32)
        out[f"grading/{model}/rgb/columns"] = np.array(columns)
        out[f"grading/{model}/rgb/predicted"] = table["predicted_class"].astype(str).to_numpy().astype("U")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--add", action="store_true", help="keep the file's inputs and recorded models; record only new models"
    )
    parser.add_argument(
        "--again",
        nargs="+",
        metavar="NAME",
        default=(),
        help="keep the file's inputs and the other models' outputs; record these models anew",
    )
    args = parser.parse_args(argv)
    if (args.add or args.again) and args.out.exists():
        with np.load(args.out, allow_pickle=False) as npz:
            kept = [key for key in npz.files if key.startswith("input/") or key.split("/")[1] not in args.again]
            data = {key: npz[key] for key in kept}
        recorded = frozenset(k.split("/")[1] for k in data if not k.startswith("input/"))
    else:
        data, recorded = inputs(), frozenset()
    data.update(record(data, recorded))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    print(f"wrote {len(data)} arrays to {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
