"""How much faster two single-threaded processes get through work than one, on this machine: the ceiling
for the slide pipeline's 2 workers × 1 thread against 1 × 1 (``slide_scale.py --compare-workers-at``).

    .venv/bin/python benchmarks/core_scaling.py --fields ../shared/data/cric_fields/images

Two workloads, each timed in fresh processes (one torch thread each, models loaded and one item run
before the clock starts, then all processes started together):

* ``tile``: the slide pipeline's own work per tile (:func:`~napari_cervix.slide_analysis.analyze_tile`
  on the tissue tiles of a 4096² mosaic of real fields, as ``slide_scale.py`` builds it), without dask;
* ``conv``: a fixed stack of 3×3 convolutions (32 channels, 256² input) — compute alone, no I/O, no Python
  between operations.

For each, one process alone and then 2 at once, ``--repeats`` times alternately; the speed-up is the work
done per second by the pair over that of the single process. Anything on the machine besides the benchmark
lowers it: run on an idle machine. Slide size and the share of tiles each process runs are printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def conv_work(items: int) -> None:
    import torch

    torch.manual_seed(0)
    layers = torch.nn.Sequential(*[torch.nn.Conv2d(32, 32, 3, padding=1) for _ in range(6)]).eval()
    x = torch.randn(1, 32, 256, 256)
    with torch.inference_mode():
        for _ in range(items):
            layers(x)


def tile_work(slide: str):
    from napari_cervix.io.slides import open_slide
    from napari_cervix.slide_analysis import SlideSettings, analyze_tile, slide_grid

    settings = SlideSettings()
    grid, cores = slide_grid(open_slide(slide).shape, settings)  # the parent chose the tissue tiles

    def run(selected: list[int]) -> None:
        for i in selected:
            analyze_tile(slide, grid[i], cores[i], settings)

    return run


def child(args) -> int:
    """One timed process: warm up on the first item, say "ready", wait for "go", time the rest."""
    import torch

    torch.set_num_threads(1)
    if args.workload == "conv":

        def run(items):
            conv_work(len(items))

        items = list(range(args.items + 1))
    else:
        run = tile_work(args.slide)
        items = [int(i) for i in args.tiles.split(",")]
    run(items[:1])  # models loaded, caches warm
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    run(items[1:])
    print(json.dumps({"items": len(items) - 1, "seconds": time.perf_counter() - started}), flush=True)
    return 0


def timed(commands: list[list[str]]) -> list[dict]:
    """Start the processes, wait until all are warm, release them together; their timings."""
    processes = [
        subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_one_thread())
        for c in commands
    ]
    for p in processes:
        line = p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"benchmark process failed before it was ready: {line!r}")
    for p in processes:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.stdout.readline()) for p in processes]
    for p in processes:
        p.wait()
    return results


def _one_thread() -> dict:
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", help="folder of RGB field images to mosaic (the tile workload)")
    parser.add_argument("--side", type=int, default=4096, help="mosaic side for the tile workload")
    parser.add_argument("--items", type=int, default=40, help="conv stacks per process")
    parser.add_argument("--tiles-per-process", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workload", choices=("conv", "tile"), help=argparse.SUPPRESS)
    parser.add_argument("--slide", help=argparse.SUPPRESS)
    parser.add_argument("--tiles", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    print("| workload | processes | items each | seconds (each) | items/s | speed-up over 1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        workloads = {"conv": lambda k: [*me, "--workload", "conv", "--items", str(args.items)]}
        if args.fields:
            sys.path.insert(0, str(Path(__file__).parent))
            from slide_scale import FieldMosaic, read_fields, write_mosaic

            slide = write_mosaic(Path(folder) / "mosaic.ome.tif", FieldMosaic(read_fields(args.fields), args.side))
            from napari_cervix.io.slides import open_slide
            from napari_cervix.slide_analysis import SlideSettings, tissue_tiles

            todo = tissue_tiles(open_slide(slide), SlideSettings()).todo
            n = args.tiles_per_process

            def tiles_for(k: int) -> list[str]:
                # each process its own tiles (one warm-up tile, then n timed), from the slide's tissue tiles
                chosen = [todo[(k * (n + 1) + j) % len(todo)] for j in range(n + 1)]
                return [*me, "--workload", "tile", "--slide", str(slide), "--tiles", ",".join(map(str, chosen))]

            workloads["tile"] = tiles_for
            print(f"(tile workload: {args.side}² mosaic, {len(todo)} tissue tiles)\n", file=sys.stderr)
        for name, command in workloads.items():
            for _ in range(args.repeats):
                rates = {}
                for count in (1, 2):
                    results = timed([command(k) for k in range(count)])
                    items = sum(r["items"] for r in results)
                    wall = max(r["seconds"] for r in results)
                    rates[count] = items / wall
                    speedup = f"{rates[count] / rates[1]:.2f}×" if count > 1 else "–"
                    each = " / ".join(f"{r['seconds']:.1f}" for r in results)
                    print(
                        f"| {name} | {count} | {results[0]['items']} | {each} | {rates[count]:.3f} | {speedup} |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
