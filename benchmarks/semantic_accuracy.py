"""Validation figures of every shipped semantic model, as a markdown table (the README's table).

    .venv/bin/python benchmarks/semantic_accuracy.py [--data ../shared/data] [--tta]

Each model is scored on the images its own metadata lists as validation (never trained on):
ISBI 2014 synthetic (full ground truth) and real EDF frames (nucleus ground truth only, so only the
nucleus columns are meaningful there). Same code path as ``napari-cervix evaluate semantic``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_cervix.registry import list_models
from napari_cervix.semantic.evaluate import evaluate_semantic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--tta", action="store_true")
    args = parser.parse_args()
    sets = {
        "ISBI 2014 synthetic": [f"isbi2014:{args.data}/isbi2014_synthetic"],
        "real EDF frames": [f"edf-nuclei:{args.data}/isbi2014_edf", f"isbi2015:{args.data}/isbi2015_cells"],
    }
    print("| model | data (val images) | MPA | mIoU | Dice bg / cyto / nucleus | P nucleus | R nucleus |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for entry in list_models("semantic"):
        for label, specs in sets.items():
            r = evaluate_semantic(entry.name, specs, tta=args.tta, log=lambda *a: None)
            d = r["dice"]
            if label.startswith("real"):
                cells = f"– | – | – / – / {d['nucleus']:.3f}"
            else:
                dice = f"{d['background']:.3f} / {d['cytoplasm']:.3f} / {d['nucleus']:.3f}"
                cells = f"{r['MPA']:.3f} | {r['mIoU']:.3f} | {dice}"
            name = entry.name + (" (default)" if entry.default else "")
            print(
                f"| {name} | {label} ({r['n_images']}) | {cells} | {r['precision']['nucleus']:.3f} | "
                f"{r['recall']['nucleus']:.3f} |"
            )


if __name__ == "__main__":
    main()
