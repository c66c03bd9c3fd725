"""Load every dataset in the shared data folder and print counts, shapes and mask sanity figures.

    python benchmarks/check_shared_data.py [DATA_DIR]   (default: ../shared/data beside the repo)

Also checks that the other encodings of the same annotations (ISBI .mat, COCO, .npz) agree.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from napari_cervix.io import load_dataset, split_samples

SETS = [  # (table name, spec relative to the data folder)
    ("isbi2014 synthetic", "isbi2014:isbi2014_synthetic"),
    ("isbi2014 edf nuclei", "edf-nuclei:isbi2014_edf"),
    ("isbi2015 cells (npz)", "isbi2015:isbi2015_cells"),
    ("herlev cells", "herlev:herlev_cells"),
    ("herlev nuclei pairs", "pairs:herlev_nuclei_severe"),
]
# (what, reference spec, other spec): both must give identical masks for each sample name
SAME_ANNOTATIONS = [
    (
        "isbi2014 .mat vs coco.json",
        "isbi2014:isbi2014_synthetic",
        "coco:isbi2014_synthetic/coco.json",
    ),
    (
        "isbi2015 npz vs CytoGroundTruth.mat",
        "isbi2015:isbi2015_cells",
        "isbi2015:isbi2015_cells/CytoGroundTruth.mat",
    ),
    (
        "isbi2015 npz vs coco/coco.json",
        "isbi2015:isbi2015_cells",
        "coco:isbi2015_cells/coco/coco.json",
    ),
    ("isbi2015 npz nuclei vs EDF GT", "isbi2015:isbi2015_cells", "edf-nuclei:isbi2014_edf"),
]


def _spec(data_dir: Path, spec: str) -> str:
    kind, path = spec.split(":", 1)
    return f"{kind}:{data_dir / path}"


def _range(values) -> str:
    return f"{min(values)}/{np.mean(values):.1f}/{max(values)}" if values else "-"


def summarize(name: str, samples, seconds: float) -> dict:
    shapes = Counter("×".join(map(str, s.image.shape)) + f" {s.image.dtype}" for s in samples)
    cells = [len(s.cells) for s in samples if s.cells is not None]
    nucleus_fraction = [float(s.nuclei.mean()) for s in samples if s.nuclei is not None]
    # Share of nucleus pixels inside some annotated cell: catches transposed or misaligned masks.
    inside = [
        float((s.nuclei & s.cells.any(0)).sum() / max(s.nuclei.sum(), 1))
        for s in samples
        if s.cells is not None and s.nuclei is not None and len(s.cells)
    ]
    empty_cells = sum(
        int((s.cells.reshape(len(s.cells), -1).sum(1) == 0).sum()) for s in samples if s.cells is not None
    )
    train, val = split_samples(samples)
    return {
        "set": name,
        "images": len(samples),
        "cells": sum(cells) if cells else "-",
        "shapes": ", ".join(f"{k} ({v})" if len(shapes) > 1 else k for k, v in shapes.most_common()),
        "cells/img min/mean/max": _range(cells),
        "nucleus px %": f"{100 * np.mean(nucleus_fraction):.2f}" if nucleus_fraction else "-",
        "nuc in cell %": f"{100 * np.mean(inside):.1f}" if inside else "-",
        "empty masks": empty_cells if cells else "-",
        "train/val": f"{len(train)}/{len(val)}",
        "load s": f"{seconds:.1f}",
    }


def print_table(rows: list[dict]) -> None:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


def compare(what: str, reference, other) -> str:
    by_name = {s.name: s for s in other}
    common = [s for s in reference if s.name in by_name]
    problems = []
    for a in common:
        b = by_name[a.name]
        if not np.array_equal(a.image, b.image):
            problems.append(f"{a.name}: image differs")
        if a.cells is not None and b.cells is not None and not np.array_equal(a.cells, b.cells):
            problems.append(f"{a.name}: cells differ ({len(a.cells)} vs {len(b.cells)})")
        if a.nuclei is not None and b.nuclei is not None and not np.array_equal(a.nuclei, b.nuclei):
            problems.append(f"{a.name}: nuclei differ ({int((a.nuclei != b.nuclei).sum())} px)")
    verdict = "identical" if not problems else "; ".join(problems)
    return f"{what}: {len(common)} common images, {verdict}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    data_dir = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    data_dir = data_dir.resolve()
    if not data_dir.is_dir():
        print(f"data folder not found: {data_dir}", file=sys.stderr)
        return 1
    print(f"data: {data_dir}\n")
    rows, labels = [], None
    for name, spec in SETS:
        start = time.perf_counter()
        samples = load_dataset(_spec(data_dir, spec))
        rows.append(summarize(name, samples, time.perf_counter() - start))
        if spec.startswith("herlev:"):
            labels = Counter(s.label for s in samples)
        elif spec.startswith("edf-nuclei:"):
            variants = Counter(s.meta["gt_variant"] for s in samples)
        del samples
    print_table(rows)
    print(f"\nherlev classes: {dict(sorted(labels.items()))}")
    print(f"edf nucleus GT variants: {dict(variants)}\n")
    for what, reference_spec, other_spec in SAME_ANNOTATIONS:
        reference = load_dataset(_spec(data_dir, reference_spec))
        other = load_dataset(_spec(data_dir, other_spec))
        print(compare(what, reference, other))
        del reference, other
    return 0


if __name__ == "__main__":
    sys.exit(main())
