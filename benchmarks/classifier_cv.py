"""Cross-validated accuracy_7class, abnormal recall and specificity of each cell classifier.

    # reproduce the figures (trains 5 folds per classifier; minutes on a GPU, hours on a CPU):
    python benchmarks/classifier_cv.py --dataset herlev:/path/to/herlev_cells --device cuda
    # print the figures stored in the shipped weights (no training):
    python benchmarks/classifier_cv.py --shipped

5-fold stratified *group* k-fold (cells of one Herlev slide image stay in one fold), seed 0, gray input
(``--rgb`` for color). The binary threshold of each fold is chosen on the other folds' out-of-fold
predictions to reach ``--target-recall``, so recall and specificity are not tuned on the cells they score.
The mask-fusion model predicts Bethesda groups: its accuracy column is 3-class (benign/L-SIL/H-SIL).
"""

from __future__ import annotations

import argparse
import json

ARCHITECTURES = ("ld_resnet", "mask_fusion", "feature_fusion", "descriptor_boost")


def _row(name: str, summary: dict) -> str:
    binary = summary["binary"]
    accuracy = summary["accuracy"]
    kind = "3-class" if len(summary.get("classes", [])) == 3 else "7-class"
    return (
        f"{name:<48}{accuracy:>10.3f} ({kind}){binary['recall_abnormal']:>10.3f}{binary['specificity']:>10.3f}"
        f"{binary['auc']:>8.3f}{summary['threshold']:>10.3f}"
    )


HEADER = f"{'classifier':<48}{'accuracy':>20}{'recall':>10}{'spec.':>10}{'AUC':>8}{'threshold':>10}"


def shipped() -> int:
    from napari_cervix.registry import fetch_weights, list_models, read_metadata

    print(HEADER)
    for entry in list_models("classifier"):
        meta = read_metadata(fetch_weights(entry))
        kinds = "/".join(entry.default_for)
        print(_row(entry.name + (f" (default for {kinds})" if kinds else ""), meta["validation"]))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="labelled single cells, e.g. herlev:DIR")
    parser.add_argument("--arch", action="append", help="architecture(s) to run (default: all four)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, help="override the shipped recipes' epochs")
    parser.add_argument("--rgb", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--target-recall", type=float, default=0.97)
    parser.add_argument("--json", help="also write the summaries to this JSON file")
    parser.add_argument("--shipped", action="store_true", help="print the figures stored in the shipped weights")
    args = parser.parse_args(argv)
    if args.shipped:
        return shipped()
    if not args.dataset:
        parser.error("--dataset is required (or use --shipped)")

    from napari_cervix.cells.training import cross_validate, load_labelled_cells, shipped_recipe
    from napari_cervix.classes import HERLEV_CLASSES

    channels = 3 if args.rgb else 1
    results, loaded = {}, {}
    for arch in args.arch or ARCHITECTURES:
        # the shipped recipes, so the figures are the ones stored in the weights
        config = shipped_recipe(arch, channels, device=args.device, target_recall=args.target_recall)
        if args.epochs:
            config.epochs = args.epochs
        if config.size not in loaded:
            loaded[config.size] = load_labelled_cells(args.dataset, config.size, channels, list(HERLEV_CLASSES))
        crops, targets, groups, _ = loaded[config.size]
        result = cross_validate(config, crops, targets, groups, folds=args.folds, log=print)
        results[arch] = result["summary"]
    print(HEADER)
    for arch, summary in results.items():
        print(_row(f"{arch} ({'rgb' if args.rgb else 'gray'})", summary))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
