"""Cells/s of :func:`napari_cervix.measure_cells` versus a plain per-region ``regionprops_table`` loop.

    python benchmarks/features_speed.py [--size 4096] [--cells 10000] [--loop-cells 1000]

Both run in this one process on the same field from :func:`napari_cervix.synth.generate_cell_field`
(10 000 cells, each with a nucleus, uint8 gray image), given to ``measure_cells`` as a Labels image and
as the sparse :class:`~napari_cervix.cellset.CellSet` of the same cells (the form instance segmentation
and the readers give). The loop is
timed on ``--loop-cells`` cells (one ``regionprops_table`` call per cell on its bounding box, with the
equivalent properties) and reported per cell, because looping over all 10 000 takes minutes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def regionprops_loop(image, cells, nuclei, labels) -> int:
    """The straightforward way: one regionprops_table per cell (and its nucleus) on the cell's box."""
    from scipy import ndimage as ndi
    from skimage.measure import regionprops_table

    boxes = ndi.find_objects(cells)
    properties = (
        "area",
        "perimeter",
        "eccentricity",
        "solidity",
        "axis_major_length",
        "axis_minor_length",
        "intensity_mean",
        "intensity_min",
        "intensity_max",
    )
    for label in labels:
        box = boxes[label - 1]
        if box is None:
            continue
        mask = cells[box] == label
        regionprops_table(mask.astype(np.uint8), image[box], properties=properties)
        nucleus = mask & (nuclei[box] > 0)
        if nucleus.any():
            regionprops_table(nucleus.astype(np.uint8), image[box], properties=properties)
    return len(labels)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--loop-cells", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from napari_cervix.cells.features import measure_cells
    from napari_cervix.cellset import CellSet
    from napari_cervix.synth import generate_cell_field

    image, cells, nuclei = generate_cell_field((args.size, args.size), args.cells, seed=0)
    present = np.unique(cells)
    present = present[present > 0]
    measure_cells(image[:256, :256], cells[:256, :256], nuclei[:256, :256])  # warm-up (imports, caches)

    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        table = measure_cells(image, cells, nuclei)
        times.append(time.perf_counter() - start)
    vectorized_s = min(times)
    assert len(table) == present.size
    cell_set = CellSet.from_labels(cells)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        from_set = measure_cells(image, cell_set, nuclei)
        times.append(time.perf_counter() - start)
    cell_set_s = min(times)
    assert from_set.equals(table)  # the same cells give the same table, whatever their form

    subset = present[:: max(1, present.size // args.loop_cells)][: args.loop_cells]
    start = time.perf_counter()
    regionprops_loop(image, cells, nuclei, subset)
    loop_per_cell = (time.perf_counter() - start) / subset.size

    rate = present.size / vectorized_s
    loop_rate = 1.0 / loop_per_cell
    print(f"field {args.size}×{args.size}, {present.size} cells ({len(table.columns)} columns incl. LBP)")
    print(f"{'method':<38}{'seconds (10k cells)':>22}{'cells/s':>12}")
    print(f"{'measure_cells (vectorized, best of ' + str(args.repeats) + ')':<38}{vectorized_s:>22.2f}{rate:>12.0f}")
    print(f"{'  … cells given as a CellSet':<38}{cell_set_s:>22.2f}{present.size / cell_set_s:>12.0f}")
    print(f"{'regionprops_table loop (per cell)':<38}{present.size * loop_per_cell:>22.2f}{loop_rate:>12.0f}")
    print(f"speed-up: {rate / loop_rate:.1f}×   target ≥ 10000 cells/s: {'met' if rate >= 10_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
