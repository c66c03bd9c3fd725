"""What the trees and the CNN of ``bethesda_fusion`` each contribute, on the out-of-fold predictions of its CV.

    .venv/bin/python benchmarks/bethesda_leads.py [--data ../shared/data] [--cache runs/bethesda] [--fold-seed 1]

Needs the fold models of ``benchmarks/bethesda_cv.py --arch bethesda_fusion`` (kept in ``cache/folds``) and
its cached detections (``--fold-seed``: the models of the CV run with that seed). Per score (the trees'
abnormal logit, the CNN's P(abnormal), their mixes): cell-level AUC and specificity at recall 0.95
(threshold on all out-of-fold predictions), field-level AUC for "any abnormal" and "any high grade" (the
field's most suspicious detection), false alarms per NILM-only field, and the recall per class at
specificity 0.85. Leads for the next recipe: a winner chosen on one seed's folds is checked on another's
before it ships.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bethesda_cv import ABNORMAL, HIGH, fold_model_path

from napari_cervix.cells.classifier import load_grader
from napari_cervix.cells.training import choose_threshold
from napari_cervix.classes import BETHESDA_GRADES
from napari_cervix.grading.train import describe_fields, field_folds, field_windows, recipe, window_arrays
from napari_cervix.io.cric import read_cric
from napari_cervix.kinds import cell_kind
from napari_cervix.kinds.bethesda import BethesdaBoost


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def at_points(fields, per_field: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per annotated point: its class and its detection's score (−1e9 when no detection reached it)."""
    classes, scores = [], []
    for field, score in zip(fields, per_field):
        position = {int(label): k for k, label in enumerate(field.labels)}
        for label, cls in zip(field.point_labels, field.point_classes):
            classes.append(cls)
            scores.append(score[position[int(label)]] if label else -1e9)
    return np.array(classes), np.array(scores)


def main() -> None:
    from sklearn.metrics import roc_auc_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--cache", default="runs/bethesda")
    parser.add_argument("--fold-seed", type=int, default=0, help="the folds of `bethesda_cv.py --fold-seed`")
    args = parser.parse_args()
    cache, config = Path(args.cache), recipe("bethesda_fusion")
    kind = cell_kind(config.arch)
    samples = read_cric(Path(args.data) / "cric_fields", pseudo_masks=False)
    fields, descriptors = describe_fields(samples, cache, config.size)
    windows = field_windows(samples, fields, cache, config.size, config.network_size)
    fold_of = field_folds(fields, 5, args.fold_seed)
    models = [load_grader(str(fold_model_path(cache, config, fold, args.fold_seed))) for fold in range(5)]

    trees, cnn = [], []
    for d, w, fold in zip(descriptors, windows, fold_of):
        model = models[fold]
        trees.append(BethesdaBoost.grade_parts(kind, model, d))
        cnn.append(kind.cnn_shares(model, *window_arrays(w)))
    tree_logit = [t[1] for t in trees]
    cnn_abnormal = [logit(p[:, ABNORMAL].sum(1)) for p in cnn]
    scores = {"trees (abnormal logit)": (tree_logit, tree_logit), "CNN": (cnn_abnormal, cnn_abnormal)}
    for w in (0.5, 0.7):
        mix = [(1 - w) * t + w * c for t, c in zip(tree_logit, cnn_abnormal)]
        scores[f"trees + CNN, w {w}"] = (mix, mix)
    cnn_high = [logit(p[:, HIGH].sum(1)) for p in cnn]
    scores["trees; field high grade from the CNN"] = (tree_logit, cnn_high)

    any_abnormal = np.array([f.point_classes.max(initial=0) > 0 for f in fields])
    any_high = np.array([np.isin(f.point_classes, [3, 4, 5]).any() for f in fields])
    print("| score | AUC | spec. at recall 0.95 | field AUC any abnormal / any high | false alarms / NILM field |")
    print("| --- | --- | --- | --- | --- |")
    tails = {}
    for name, (cell, high) in scores.items():
        classes, s = at_points(fields, cell)
        abnormal = classes > 0
        t = choose_threshold(s, abnormal, 0.95)
        field_abn = [c.max(initial=-1e9) for c in cell]
        field_high = [h.max(initial=-1e9) for h in high]
        alarms = np.array([(c >= t).sum() for c in cell])[~any_abnormal].mean()
        print(
            f"| {name} | {roc_auc_score(abnormal, s):.3f} | {(s[~abnormal] < t).mean():.3f} | "
            f"{roc_auc_score(any_abnormal, field_abn):.3f} / {roc_auc_score(any_high, field_high):.3f} | {alarms:.1f} |"
        )
        at85 = np.quantile(s[~abnormal], 0.85)
        tails[name] = [(s[abnormal] >= at85).mean()] + [(s[classes == c] >= at85).mean() for c in range(1, 6)]
    print("\n| recall at specificity 0.85 | all abnormal | " + " | ".join(BETHESDA_GRADES[1:]) + " |")
    print("| --- " * 7 + "|")
    for name, row in tails.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")


if __name__ == "__main__":
    main()
