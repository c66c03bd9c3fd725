"""Time to the first gallery page (order + 100 thumbnails read lazily from a slide) for 1k/10k/100k cells.

    .venv/bin/python benchmarks/review_speed.py [--side 8192] [--sizes 1000 10000 100000]

The slide is a generated pyramidal OME-TIFF (smear fields tiled on glass) written to a temporary folder;
thumbnails are read from its full-resolution level through tifffile's zarr store, as the Review widget
does. The table is random (centroids anywhere on the slide, abnormal probabilities uniform).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from napari_cervix.io.slides import open_slide, write_ome_tiff
from napari_cervix.review import gallery_order, page, thumbnails
from napari_cervix.synth import PIXEL_SIZE_UM, generate_smear


class Mosaic:
    """side×side RGB: generated 512² fields repeated, a stand-in for a slide that is never held in memory."""

    def __init__(self, side: int):
        self.fields = [generate_smear((512, 512), n_cells=6, seed=s, rgb=True).image for s in range(4)]
        self.shape, self.dtype, self.ndim = (side, side, 3), np.dtype(np.uint8), 3

    def __getitem__(self, key):
        rows, cols = (range(self.shape[i])[k] for i, k in enumerate(key[:2]))
        out = np.empty((len(rows), len(cols), 3), np.uint8)
        for y0 in range(rows.start - rows.start % 512, rows.stop, 512):
            for x0 in range(cols.start - cols.start % 512, cols.stop, 512):
                field = self.fields[(y0 // 512 + x0 // 512) % 4]
                ys, xs = (
                    slice(max(rows.start, y0), min(rows.stop, y0 + 512)),
                    slice(max(cols.start, x0), min(cols.stop, x0 + 512)),
                )
                out[ys.start - rows.start : ys.stop - rows.start, xs.start - cols.start : xs.stop - cols.start] = field[
                    ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0
                ]
        return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=8192)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = write_ome_tiff(Path(folder) / "slide.ome.tif", Mosaic(args.side), pixel_size_um=PIXEL_SIZE_UM)
        slide = open_slide(path)
        print(f"slide {args.side}² px, {len(slide.levels)} levels; first page = {args.page_size} thumbnails of 96²\n")
        print("| cells | order (s) | thumbnails (s) | first page (s) |")
        print("| --- | --- | --- | --- |")
        rng = np.random.default_rng(0)
        for n in args.sizes:
            table = pd.DataFrame(
                {
                    "label": np.arange(1, n + 1),
                    "centroid_y": rng.uniform(0, args.side, n),
                    "centroid_x": rng.uniform(0, args.side, n),
                    "predicted_class": pd.Categorical(rng.choice(["NILM", "LSIL", "HSIL"], n)),
                    "p_abnormal": rng.uniform(0, 1, n),
                }
            )
            t0 = time.perf_counter()
            first = page(gallery_order(table), 0, args.page_size)
            t1 = time.perf_counter()
            thumbnails(slide.levels[0], table, first)
            t2 = time.perf_counter()
            print(f"| {n:,} | {t1 - t0:.3f} | {t2 - t1:.3f} | {t2 - t0:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
