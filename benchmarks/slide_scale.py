"""Slide pipeline at scale: cells, seconds, tiles/s and peak memory of the process tree, per slide size; and
2 workers × 1 thread against 1 worker × 1 thread on the same slide.

    .venv/bin/python benchmarks/slide_scale.py --fields ../shared/data/cric_fields/images --sizes 4096 16384 32768

Slides are pyramidal OME-TIFFs mosaicked from real fields (every other 1280×960 field slot left as glass, so
about half the slide is tissue), written to a temporary folder and never kept. Each run is its own process;
peak RSS of the process tree is sampled every 0.2 s with psutil (workers included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GLASS = (236, 232, 228)


class FieldMosaic:
    """side×side RGB made of the given fields in a checkerboard with glass; read lazily, never held whole."""

    def __init__(self, fields: list[np.ndarray], side: int):
        self.fields, self.side = fields, side
        self.fh, self.fw = fields[0].shape[:2]
        self.shape, self.dtype, self.ndim = (side, side, 3), np.dtype(np.uint8), 3

    def __getitem__(self, key):
        rows, cols = (range(self.side)[k] for k in key[:2])
        out = np.empty((len(rows), len(cols), 3), np.uint8)
        out[:] = GLASS
        for r in range(rows.start // self.fh, (rows.stop - 1) // self.fh + 1):
            for c in range(cols.start // self.fw, (cols.stop - 1) // self.fw + 1):
                if (r + c) % 2:
                    continue  # glass
                field = self.fields[(r * 7 + c) % len(self.fields)]
                y0, x0 = r * self.fh, c * self.fw
                ys = slice(max(rows.start, y0), min(rows.stop, y0 + self.fh))
                xs = slice(max(cols.start, x0), min(cols.stop, x0 + self.fw))
                out[ys.start - rows.start : ys.stop - rows.start, xs.start - cols.start : xs.stop - cols.start] = field[
                    ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0
                ]
        return out


def run_measured(slide: Path, out: Path, workers: int | None) -> dict:
    import psutil

    code = (
        "import json, sys; from napari_cervix.slide_analysis import analyze_slide\n"
        "workers = int(sys.argv[3]) or None\n"
        "print(json.dumps(analyze_slide(sys.argv[1], sys.argv[2], workers=workers).summary))\n"
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(slide), str(out), str(workers or 0)], stdout=subprocess.PIPE, text=True
    )
    parent, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    summary = json.loads(process.stdout.read().strip().splitlines()[-1])
    summary["wall_seconds"] = time.perf_counter() - started
    summary["peak_rss_gb"] = peak / 2**30
    return summary


def main(argv=None) -> int:
    from napari_cervix.io import read_image
    from napari_cervix.io.slides import write_ome_tiff

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", required=True, help="folder of RGB field images to mosaic")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 32768])
    parser.add_argument("--compare-workers-at", type=int, default=4096, help="slide side for the 2-vs-1 worker run")
    args = parser.parse_args(argv)
    fields = [read_image(p)[..., :3] for p in sorted(Path(args.fields).glob("*.jpg"))[:20]]
    height = min(f.shape[0] for f in fields)
    fields = [f[:height] for f in fields]
    print("| slide | workers | cells | seconds | tiles | tiles/s | skipped | peak RSS (GB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        runs = [(side, 1) for side in args.sizes] + [(args.compare_workers_at, 2)]
        for side, workers in runs:
            slide = Path(folder) / f"mosaic_{side}.ome.tif"
            if not slide.exists():
                write_ome_tiff(slide, FieldMosaic(fields, side), pixel_size_um=None)
            s = run_measured(slide, Path(folder) / f"out_{side}_{workers}", workers)
            tiles = s["tiles_with_tissue"]
            print(
                f"| {side}² | {workers} × 1 thread | {s['cells']} | {s['wall_seconds']:.0f} | {tiles} | "
                f"{tiles / s['wall_seconds']:.3f} | {s['skipped_fraction']:.0%} | {s['peak_rss_gb']:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
