"""Bethesda grading on real Pap-smear fields (CRIC Cervix), end to end, by field-grouped 5-fold cross-validation.

    nice -n 10 .venv/bin/python benchmarks/bethesda_cv.py [--data ../shared/data] [--cache runs/bethesda]
        [--out runs/bethesda/cv.json] [--arch bethesda_fusion] [--fold-seed 1]

One run: the fields are split into 5 folds (stratified by each field's most severe class, grouped by field);
for each fold the Bethesda classifier (the shipped recipe) is fitted on the other folds' detections and
grades every detection of its fields. Detections are the default semantic model's nuclei (as ``analyze_field``
finds them; note that model was trained on 117 of these 148 fields, its own validation recall was 0.994).
**End to end**: an annotated cell counts as flagged when the detection it matched is ``reviewable``; an
annotated cell no detection reached counts as not flagged (an abnormal one as missed). Printed: abnormal
recall / specificity / AUC at the operating point (each fold's threshold chosen on the other folds'
out-of-fold predictions for recall ≥ 0.95, and the pooled one that ships), the 6-class confusion matrix and
balanced accuracy, field-level AUC for "any abnormal" and "any high grade" (ASC-H/HSIL/SCC), false alarms
(reviewable detections) per NILM-only field and what they are (annotated NILM cells or not-squamous
detections), a reliability table of the calibrated ``p_abnormal``, and the
previous default's Herlev figures. Data: CRIC Cervix (Rezende et al., Sci. Data 8:151, 2021; CC BY 4.0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from napari_cervix.cells.classifier import load_grader
from napari_cervix.cells.training import choose_threshold
from napari_cervix.classes import BETHESDA_ABNORMAL, BETHESDA_GRADES, BETHESDA_HIGH_GRADE
from napari_cervix.grading.cric_cells import OUTPUT_CLASSES
from napari_cervix.grading.train import (
    ARCH,
    field_folds,
    field_windows,
    fit_on_fields,
    grading_inputs,
    recipe,
    training_pairs,
    window_arrays,
)
from napari_cervix.grading.trees import fit_calibration
from napari_cervix.io.cric import read_cric
from napari_cervix.kinds import cell_kind

ABNORMAL = np.array([c in BETHESDA_ABNORMAL for c in OUTPUT_CLASSES])
HIGH = np.array([c in BETHESDA_HIGH_GRADE for c in OUTPUT_CLASSES])
#: Herlev figures of the previous default for color input (classifier-descriptor-boost-rgb; README).
EXTRA_HELP = (
    "JSON replacing the recipe's extra options, e.g. '{}' for the grader without white balance and recolored "
    "copies (the recipe before them)"
)
HERLEV_PREVIOUS = (
    "grouped 5-fold CV 7-class 0.60 / recall 0.97 / specificity 0.73; held-out Herlev 0.677 / 0.994 / 0.766"
)


def point_scores(fields, probabilities):
    """Per annotated point: (class index, p_abnormal of its detection or -1 when missed, predicted class or -1)."""
    classes, p_abn, predicted = [], [], []
    for field, proba in zip(fields, probabilities):
        position = {int(label): k for k, label in enumerate(field.labels)}
        for label, cls in zip(field.point_labels, field.point_classes):
            classes.append(cls)
            if label:
                p = proba[position[int(label)]]
                p_abn.append(p[ABNORMAL].sum())
                predicted.append(int(p[: len(BETHESDA_GRADES)].argmax()))
            else:
                p_abn.append(-1.0)
                predicted.append(-1)
    return np.array(classes), np.array(p_abn), np.array(predicted)


def fold_model_path(cache: Path, config, fold: int, fold_seed: int = 0) -> Path:
    """Where fold ``fold``'s model of ``config`` is kept (keyed by the recipe and the folds' seed, so a killed
    run resumes; seed 0, the shipped folds, keeps the key it always had)."""
    recipe_key = hashlib.sha256(json.dumps(asdict(config), sort_keys=True, default=str).encode()).hexdigest()[:10]
    seed = f"-seed{fold_seed}" if fold_seed else ""
    return cache / "folds" / f"{config.arch}-{recipe_key}{seed}-fold{fold}.safetensors"


def fold_models(
    cache: Path, config, fields, descriptors, windows, fold_of, folds: int, fold_seed: int = 0, recolored=()
) -> list:
    """Fold k's grader, fitted on the other folds' detections (and their ``recolored`` copies, see
    :func:`~napari_cervix.grading.train.grading_inputs`), for every k (kept in ``cache/folds``: a killed run
    resumes, and other benchmarks reuse them)."""
    if windows and recolored:
        raise ValueError(f"{config.arch}: recolored copies have no windows for its CNN")
    models = []
    for fold in range(folds):
        started = time.monotonic()
        path = fold_model_path(cache, config, fold, fold_seed)
        if path.exists():
            models.append(load_grader(str(path)))
            print(f"fold {fold + 1}/{folds}: {path} (kept from an earlier run)", flush=True)
            continue
        train = [k for k in range(len(fields)) if fold_of[k] != fold]
        pairs = training_pairs(fields, descriptors, recolored, train)
        grader, y = fit_on_fields(config, pairs, windows=[windows[k] for k in train] if windows else None)
        path.parent.mkdir(parents=True, exist_ok=True)
        grader.save(path)
        models.append(load_grader(str(path)))  # as saved (fp16 CNN weights), the same whether kept or new
        counts = ", ".join(f"{c} {n}" for c, n in zip(OUTPUT_CLASSES, np.bincount(y, minlength=len(OUTPUT_CLASSES))))
        print(f"fold {fold + 1}/{folds}: trained on {counts}; {time.monotonic() - started:.0f} s", flush=True)
    return models


def out_of_fold(kind, models, fold_of, descriptors, windows=None) -> list:
    """Per field: the grading parts (class shares, abnormal logit) of its detections by its fold's model."""
    return [
        kind.grade_parts(models[k], d, *(window_arrays(windows[i]) if windows else (None, None)))
        for i, (d, k) in enumerate(zip(descriptors, fold_of))
    ]


def operating_point(kind, models, fold_of, fields, parts, target_recall: float):
    """(calibration, calibrated probabilities per field, threshold) from out-of-fold ``parts``: Platt scaling
    of the abnormal logit on the graded and not-squamous detections, then the pooled threshold on
    ``p_abnormal`` that reaches ``target_recall`` of the annotated abnormal cells (what ships)."""
    targets = np.concatenate([f.targets for f in fields])
    logits = np.concatenate([logit for _, logit in parts])
    calibration = fit_calibration(logits[targets >= 0], ABNORMAL[targets[targets >= 0]])
    probabilities = [kind.probabilities(models[k], *part, calibration) for part, k in zip(parts, fold_of)]
    classes, p_abn, _ = point_scores(fields, probabilities)
    return calibration, probabilities, choose_threshold(p_abn, classes > 0, target_recall)


def field_scores(fields, probabilities) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per field: (any abnormal annotated, any high grade annotated, largest p_abnormal, largest P(high grade))."""
    any_abn = np.array([f.point_classes.max(initial=0) > 0 for f in fields])
    any_high = np.array(
        [np.isin(f.point_classes, [BETHESDA_GRADES.index(c) for c in BETHESDA_HIGH_GRADE]).any() for f in fields]
    )
    field_abn = np.array([p[:, ABNORMAL].sum(1).max(initial=0) for p in probabilities])
    field_high = np.array([p[:, HIGH].sum(1).max(initial=0) for p in probabilities])
    return any_abn, any_high, field_abn, field_high


def end_to_end(fields, probabilities, threshold: float) -> dict:
    """The headline figures at one operating point: abnormal recall and specificity of the annotated cells
    (a cell no detection reached is not flagged), AUC, field-level AUCs, false alarms per NILM-only field."""
    from sklearn.metrics import roc_auc_score

    classes, p_abn, _ = point_scores(fields, probabilities)
    abnormal, flagged = classes > 0, p_abn >= threshold
    any_abn, any_high, field_abn, field_high = field_scores(fields, probabilities)
    alarms = np.array([(p[:, ABNORMAL].sum(1) >= threshold).sum() for p in probabilities])
    return {
        "recall_abnormal": float(flagged[abnormal].mean()),
        "specificity": float((~flagged[~abnormal]).mean()),
        "auc": float(roc_auc_score(abnormal, p_abn)),
        "field_auc_abnormal": float(roc_auc_score(any_abn, field_abn)),
        "field_auc_high_grade": float(roc_auc_score(any_high, field_high)),
        "false_alarms_per_nilm_field": float(alarms[~any_abn].mean()),
        "detected": float((p_abn >= 0).mean()),
    }


def main() -> None:
    from sklearn.metrics import roc_auc_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--cache", default="runs/bethesda", help="folder for cached detections and fold models")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", default="runs/bethesda/cv.json")
    parser.add_argument("--arch", default=ARCH, help="the grading kind to cross-validate (default: the shipped one)")
    parser.add_argument(
        "--fold-seed",
        type=int,
        default=0,
        help="seed of the field folds (0: the folds the shipped operating point comes from; others check a "
        "choice made on those folds on fresh ones)",
    )
    parser.add_argument("--extra", type=json.loads, default=None, help=EXTRA_HELP)
    args = parser.parse_args()
    cache = Path(args.cache)
    config = recipe(args.arch) if args.extra is None else recipe(args.arch, extra=args.extra)
    kind = cell_kind(config.arch)

    samples = read_cric(Path(args.data) / "cric_fields", pseudo_masks=False)
    fields, descriptors, recolored = grading_inputs(config, samples, cache)
    windows = field_windows(samples, fields, cache, config.size, config.network_size) if kind.has_network else None
    fold_of = field_folds(fields, args.folds, args.fold_seed)
    print(
        f"{len(fields)} CRIC fields, {sum(len(f.points) for f in fields)} annotated cells, "
        f"{args.folds} folds (seed {args.fold_seed})"
    )
    print(f"grader: {config.arch} ({kind.description})")

    models = fold_models(cache, config, fields, descriptors, windows, fold_of, args.folds, args.fold_seed, recolored)

    parts = out_of_fold(kind, models, fold_of, descriptors, windows)
    calibration, probabilities, threshold = operating_point(kind, models, fold_of, fields, parts, config.target_recall)
    targets = np.concatenate([f.targets for f in fields])
    classes, p_abn, predicted = point_scores(fields, probabilities)
    abnormal = classes > 0

    point_fold = np.concatenate([np.full(len(f.points), k) for f, k in zip(fields, fold_of)])
    flagged = np.zeros(len(classes), bool)
    for fold in range(args.folds):
        rest = point_fold != fold
        t = choose_threshold(p_abn[rest], abnormal[rest], config.target_recall)
        flagged[point_fold == fold] = p_abn[point_fold == fold] >= t
    pooled = p_abn >= threshold

    print(
        f"\ncalibration slope {calibration[0]:.3f} intercept {calibration[1]:.3f}; "
        f"shipped operating point p_abnormal ≥ {threshold:.4f}"
    )
    print("| end to end (annotated cells) | abnormal recall | specificity | AUC |")
    print("| --- | --- | --- | --- |")
    auc = roc_auc_score(abnormal, p_abn)
    for label, flags in (("per-fold thresholds (other folds')", flagged), ("pooled threshold (shipped)", pooled)):
        print(f"| {label} | {flags[abnormal].mean():.3f} | {(~flags[~abnormal]).mean():.3f} | {auc:.3f} |")
    print(
        "\nrecall per class at the shipped point: "
        + ", ".join(
            f"{c} {pooled[classes == i].mean():.3f} ({(classes == i).sum()})"
            for i, c in enumerate(BETHESDA_GRADES)
            if i
        )
    )
    print(f"NILM flagged: {pooled[classes == 0].mean():.3f}; missed by the detector: {(predicted < 0).sum()} cells")

    # 6-class confusion of annotated cells (rows truth, columns predicted; "missed" = not detected).
    print("\n| truth \\ predicted | " + " | ".join(BETHESDA_GRADES) + " | missed |")
    print("| --- " * (len(BETHESDA_GRADES) + 2) + "|")
    recalls = []
    for i, name in enumerate(BETHESDA_GRADES):
        row = [(predicted[classes == i] == j).sum() for j in range(len(BETHESDA_GRADES))]
        row.append((predicted[classes == i] < 0).sum())
        recalls.append(row[i] / max(1, (classes == i).sum()))
        print(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    print(f"balanced accuracy (6 classes, end to end): {np.mean(recalls):.3f}")

    # Field level: the most suspicious detection decides.
    figures = end_to_end(fields, probabilities, threshold)
    any_abn, any_high = field_scores(fields, probabilities)[:2]
    nilm_only = ~any_abn
    print(
        f"\nfield-level AUC any abnormal {figures['field_auc_abnormal']:.3f} ({any_abn.sum()} of {len(fields)} "
        f"fields); any high grade {figures['field_auc_high_grade']:.3f} "
        f"({any_high.sum()} fields)"
    )
    print(
        f"false alarms (reviewable detections) per NILM-only field: {figures['false_alarms_per_nilm_field']:.2f} "
        f"over {nilm_only.sum()} fields"
    )
    # What those false alarms are: annotated NILM cells, or detections far from every point (not squamous).
    alarm_targets = np.concatenate(
        [f.targets[p[:, ABNORMAL].sum(1) >= threshold] for f, p, n in zip(fields, probabilities, nilm_only) if n]
    )
    nilm_cells, not_squamous, neither = (
        (alarm_targets == OUTPUT_CLASSES.index("NILM")).sum() / nilm_only.sum(),
        (alarm_targets == OUTPUT_CLASSES.index("not_squamous")).sum() / nilm_only.sum(),
        (alarm_targets < 0).sum() / nilm_only.sum(),
    )
    print(
        f"  of which per field: annotated NILM cells {nilm_cells:.2f}, not squamous {not_squamous:.2f}, "
        f"neither (near a point, unmatched) {neither:.2f}"
    )

    # Reliability of the calibrated p_abnormal over graded detections.
    graded = targets >= 0
    p_all = np.concatenate(probabilities)[graded][:, ABNORMAL].sum(1)
    truth = ABNORMAL[targets[graded]]
    print("\n| p_abnormal bin | detections | mean p_abnormal | share abnormal |")
    print("| --- | --- | --- | --- |")
    edges = np.linspace(0, 1, 11)
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (p_all >= lo) & ((p_all < hi) | (hi == 1))
        if inside.any():
            print(f"| {lo:.1f}–{hi:.1f} | {inside.sum()} | {p_all[inside].mean():.3f} | {truth[inside].mean():.3f} |")
    print(f"\nprevious default for color input on Herlev: {HERLEV_PREVIOUS}")

    result = {
        "arch": config.arch,
        "fold_seed": args.fold_seed,
        "calibration": {"slope": calibration[0], "intercept": calibration[1]},
        "threshold": threshold,
        "target_recall": config.target_recall,
        "recall_abnormal": float(flagged[abnormal].mean()),
        "specificity": float((~flagged[~abnormal]).mean()),
        "auc": float(auc),
        "field_auc_high_grade": figures["field_auc_high_grade"],
        "false_alarms_per_nilm_field": figures["false_alarms_per_nilm_field"],
        "balanced_accuracy": float(np.mean(recalls)),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
