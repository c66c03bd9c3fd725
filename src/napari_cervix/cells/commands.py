"""CLI sub-commands of the cells capability: classify, evaluate classifier, train classifier.

Light at import time (no torch): the CLI lists every capability's commands before running one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import Command


def _read_array(path: str, what: str):
    """An image / label array from a file (TIFF, PNG/JPEG, .npy, or .npz with one array)."""
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path)
    if suffix == ".npz":
        with np.load(path) as data:
            if len(data.files) != 1:
                raise ValueError(f"{path} holds arrays {data.files}; give a file with exactly one")
            return data[data.files[0]]
    from ..io.images import read_image

    return read_image(path)


# -------------------------------------------------------------------------------------- classify


def _classify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="gray or RGB image (TIFF, PNG, JPEG, .npy)")
    parser.add_argument("--cells", required=True, help="cell Labels image (0 = background) or N×H×W masks")
    parser.add_argument("--nuclei", help="optional nucleus mask or Labels image")
    parser.add_argument("--model", default="default", help="registered classifier name or .safetensors file")
    parser.add_argument("--out", required=True, help="CSV table to write (one row per cell)")
    parser.add_argument("--no-isolate", action="store_true", help="keep neighbouring cells in the crops")
    parser.add_argument(
        "--tta",
        type=int,
        default=None,
        help="test-time flips/rotations, 1-8 (default: the model's, 8 for the shipped ones)",
    )


def _classify_run(args: argparse.Namespace) -> int:
    from ..io._atomic import atomic_path
    from .classify import classify_cells

    image = _read_array(args.image, "image")
    cells = _read_array(args.cells, "cells")
    nuclei = _read_array(args.nuclei, "nuclei") if args.nuclei else None
    table = classify_cells(image, cells, nuclei, args.model, isolate=not args.no_isolate, tta=args.tta)
    with atomic_path(args.out) as tmp:  # a crash mid-write never leaves a truncated table
        table.to_csv(tmp, index=False)
    counts = table["predicted_class"].value_counts().to_dict() if len(table) else {}
    print(f"{len(table)} cells → {args.out}; " + ", ".join(f"{k}: {v}" for k, v in counts.items() if v))
    return 0


# -------------------------------------------------------------------------------------- evaluate


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="registered classifier name or .safetensors file")
    parser.add_argument("--dataset", required=True, help="labelled single cells, e.g. herlev:DIR")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")


def evaluate_classifier(model, spec: str) -> dict:
    """Scores of a classifier on a labelled single-cell dataset (Herlev layout).

    ``accuracy_7class`` compares the predicted Herlev class (None for a model whose outputs are the Bethesda
    groups, which report ``accuracy_bethesda``); ``binary`` is normal (3 classes) vs abnormal (4) using the
    model's stored threshold; ``confusion`` rows are true classes, columns predicted classes.
    """
    import numpy as np

    from ..classes import HERLEV_CLASSES, HERLEV_TO_BETHESDA
    from ..imaging import color_kind
    from ..metrics import classification_metrics
    from .classifier import load_classifier
    from .training import labelled_samples, load_labelled_cells

    samples = labelled_samples(spec)
    # "default" = the classifier trained for this dataset's kind of input (Herlev is color).
    color = "rgb" if any(color_kind(s.image) == "rgb" for s in samples) else "gray"
    classifier = load_classifier(model, color)
    crops, targets, _, _ = load_labelled_cells(
        spec, classifier.size, classifier.channels, list(HERLEV_CLASSES), samples=samples
    )
    proba = classifier.predict_proba(crops)
    predicted, _, _ = classifier.decide(proba)  # the class agrees with the thresholded reviewable flag
    seven_class = classifier.classes == list(HERLEV_CLASSES)
    true = (
        targets
        if seven_class
        else np.array([classifier.classes.index(HERLEV_TO_BETHESDA[HERLEV_CLASSES[t]]) for t in targets])
    )
    scores = classification_metrics(
        true, predicted, classifier.classes, proba=proba, positive_classes=classifier.abnormal_classes
    )
    binary = scores["binary"]
    return {
        "model": str(model),
        "architecture": classifier.arch,
        "cells": len(targets),
        "threshold": classifier.threshold,
        "accuracy_7class": scores["accuracy"] if seven_class else None,
        **({} if seven_class else {"accuracy_bethesda": scores["accuracy"]}),
        "binary": {k: binary[k] for k in ("recall_abnormal", "specificity", "accuracy", "auc")},
        "confusion": scores["confusion_matrix"],
        "classes": classifier.classes,
    }


def _evaluate_run(args: argparse.Namespace) -> int:
    result = evaluate_classifier(args.model, args.dataset)
    if args.json:
        print(json.dumps(result))
    else:
        binary = result["binary"]
        accuracy = result["accuracy_7class"] if result["accuracy_7class"] is not None else result["accuracy_bethesda"]
        print(
            f"{result['cells']} cells  accuracy {accuracy:.3f}  abnormal recall {binary['recall_abnormal']:.3f}  "
            f"specificity {binary['specificity']:.3f}  AUC {binary['auc']:.3f}"
        )
    return 0


# ----------------------------------------------------------------------------------------- train


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from ..kinds import kind_names

    parser.add_argument(
        "--arch", default="ld_resnet", choices=kind_names("classifier"), help="classifier kind to train"
    )
    parser.add_argument("--dataset", required=True, help="labelled single cells, e.g. herlev:DIR")
    parser.add_argument("--out", required=True, help="output folder (model, CV figures, checkpoints)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--epochs", type=int, default=None, help="default: the shipped recipe's (60 or 120)")
    parser.add_argument(
        "--size", type=int, default=None, help="crop size in pixels (default 96; descriptor_boost 128, its CNN 96)"
    )
    parser.add_argument("--rgb", action="store_true", help="train on color instead of gray")
    parser.add_argument(
        "--cv-folds",
        type=int,
        default=0,
        help="also cross-validate with this many folds and "
        "set the reviewable threshold from the out-of-fold predictions",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--seed", type=int, default=0)


def _train_run(args: argparse.Namespace) -> int:
    from ..classes import HERLEV_CLASSES
    from .training import (
        cross_validate,
        load_labelled_cells,
        shipped_recipe,
        train_classifier,
        write_json,
    )

    config = shipped_recipe(args.arch, 3 if args.rgb else 1, device=args.device, seed=args.seed)
    if args.epochs:
        config.epochs = args.epochs
    if args.size:
        config.size = args.size
        config.network_size = min(config.network_size or args.size, args.size)  # never upsample for the CNN
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    crops, targets, groups, _ = load_labelled_cells(args.dataset, config.size, config.channels, list(HERLEV_CLASSES))
    log(f"{len(crops)} cells from {args.dataset}; training {config.arch} for {config.epochs} epochs")
    validation = None
    if args.cv_folds:
        result = cross_validate(config, crops, targets, groups, folds=args.cv_folds, log=log)
        validation = result["summary"]
        write_json(out / f"{config.arch}_cv.json", validation)
        log(json.dumps({k: validation[k] for k in ("accuracy", "binary", "threshold")}))
    classifier = train_classifier(config, crops, targets, checkpoint_dir=out, resume=args.resume, log=log)
    if validation is not None:
        classifier.threshold = validation["threshold"]
    meta = {
        "training": {
            "dataset": args.dataset,
            "cells": len(crops),
            "epochs": config.epochs,
            "seed": config.seed,
            "recipe": "napari-cervix train classifier",
        }
    }
    if validation is not None:
        meta["validation"] = {k: validation[k] for k in ("folds", "accuracy", "binary", "threshold", "confusion")}
    path = out / f"{config.arch}.safetensors"
    sha = classifier.save(path, meta)
    print(json.dumps({"model": str(path), "sha256": sha, "architecture": config.arch}))
    return 0


COMMANDS = [
    Command(
        "classify",
        None,
        "measure and classify every cell of a labelled image into a CSV table",
        _classify_arguments,
        _classify_run,
    ),
    Command(
        "evaluate",
        "classifier",
        "score a cell classifier on labelled single cells (Herlev layout)",
        _evaluate_arguments,
        _evaluate_run,
    ),
    Command(
        "train",
        "classifier",
        "train a cell classifier (LD/ResNet, mask fusion, feature fusion, descriptor boost)",
        _train_arguments,
        _train_run,
    ),
]
