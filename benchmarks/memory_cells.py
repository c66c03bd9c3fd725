"""Peak memory of instance segmentation + classification on large generated fields.

    .venv/bin/python benchmarks/memory_cells.py [--sizes 2048 3072 4096] [--tta 8]

Each field is :func:`napari_cervix.synth.generate_smear_field` (512² synthetic smears side by side:
about 120, 280 and 500 overlapping cells at 2048², 3072² and 4096²). Each size runs in its own
subprocess, so its peak resident memory (``ru_maxrss``) is its own: ``segment_instances`` with the shipped
model, then ``classify_cells`` with the default classifier on the result's cell set and nuclei — what a
console user does. Prints a table: cells in the field, cells and nuclei found, seconds of each step, the
peak RSS when segmentation is done and at the end, and the bytes held by the result's cell set. The target
of issue 10: peak RSS flat in the field size and ≤ 2 GB (the dense N×H×W stacks this replaced took 2.8 GB
at 2048² and 4.7 GB at 3072²).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux: KiB


def run_one(size: int, tta: int | None) -> dict:
    import napari_cervix as nc
    from napari_cervix.synth import generate_smear_field

    field = generate_smear_field((size, size), seed=size)
    start = time.perf_counter()
    result = nc.segment_instances(field.image)
    segmented = time.perf_counter()
    segment_peak = _peak_rss_mb()
    table = nc.classify_cells(field.image, result.cells, result.nuclei, tta=tta)
    classified = time.perf_counter()
    return {
        "size": size,
        "true_cells": len(field.cells),
        "cells": len(result),
        "nuclei": len(result.nuclei),
        "rows": len(table),
        "segment_s": round(segmented - start, 1),
        "classify_s": round(classified - segmented, 1),
        "segment_peak_mb": segment_peak,
        "peak_rss_mb": _peak_rss_mb(),
        "cell_set_mb": round(result.cells.nbytes / 2**20, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 3072, 4096])
    parser.add_argument("--tta", type=int, default=None, help="classifier test-time views (default: the model's)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the per-size subprocess
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.tta)))
        return 0
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--one", str(size)] + (["--tta", str(args.tta)] if args.tta else [])
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{size}² done", file=sys.stderr)
    header = ("field", "cells (truth)", "cells found", "nuclei", "segment s", "classify s")
    header += ("peak RSS MB after segment", "peak RSS MB", "cell set MB")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        print(
            f"{r['size']}² | {r['true_cells']} | {r['cells']} | {r['nuclei']} | {r['segment_s']} | "
            f"{r['classify_s']} | {r['segment_peak_mb']} | {r['peak_rss_mb']} | {r['cell_set_mb']}"
        )
    peak = max(r["peak_rss_mb"] for r in rows)
    print(f"peak RSS ≤ 2 GB: {'met' if peak <= 2048 else 'NOT met'} (largest {peak} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
