"""Semantic segmentation speed on CPU: megapixels/s of each shipped model on 2048² and 4096² images,
peak memory, and achieved FLOP/s as a fraction of this machine's measured matmul FLOP/s.

    .venv/bin/python benchmarks/semantic_speed.py [--sizes 2048 4096] [--threads 2] [--tile 512]

Each (model, size) runs in a fresh subprocess so its peak resident memory is its own. The network's
FLOPs are counted with torch's FlopCounterMode on one tile and multiplied by the number of tiles.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def matmul_flops(threads: int, dtype: str = "float32", n: int = 2048, repeats: int = 10) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.rand(n, n, dtype=getattr(torch, dtype)), torch.rand(n, n, dtype=getattr(torch, dtype))
    a @ b  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0)


def one(model: str, size: int, threads: int, tile: int, precision: str = "auto") -> dict:
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from napari_cervix.semantic.inference import load_semantic_model, segment_semantic
    from napari_cervix.synth import generate_smear
    from napari_cervix.tiling import tile_grid

    torch.set_num_threads(threads)
    loaded = load_semantic_model(model)
    base = generate_smear(shape=(1024, 1024), n_cells=(20, 30), seed=7).image
    image = np.tile(base, (size // 1024, size // 1024))
    segment_semantic(image[:512, :512], loaded, tile_size=tile, precision=precision)  # warm-up
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    segment_semantic(image, loaded, tile_size=tile, precision=precision)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        loaded.network(torch.zeros(1, 1, tile, tile))
    tiles = len(tile_grid(image.shape, tile, 64))
    flops = counter.get_total_flops() * tiles
    return {
        "model": model,
        "size": size,
        "seconds": seconds,
        "mp_per_s": size * size / 1e6 / seconds,
        "gflop_per_s": flops / seconds / 1e9,
        "peak_mb": peak_mb,
        "rss_before_mb": rss_before / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.threads, args.tile, args.precision)))
        return
    from napari_cervix.registry import list_models
    from napari_cervix.semantic.inference import native_bfloat16

    models = args.models or [e.name for e in list_models("semantic")]
    # Compare with matmul in the precision the models actually run in (bf16 where the CPU has it).
    precision = args.precision if args.precision != "auto" else ("bfloat16" if native_bfloat16() else "float32")
    peak = matmul_flops(args.threads, precision)
    rows = []
    for model in models:
        for size in args.sizes:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    model,
                    str(size),
                    "--threads",
                    str(args.threads),
                    "--tile",
                    str(args.tile),
                    "--precision",
                    precision,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"\nCPU, {args.threads} threads, tile {args.tile}, network in {precision}; "
        f"measured {precision} matmul: {peak / 1e9:.1f} GFLOP/s\n"
    )
    print("| model | image | seconds | MP/s | GFLOP/s | of matmul | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['model']} | {r['size']}² | {r['seconds']:.1f} | {r['mp_per_s']:.2f} | {r['gflop_per_s']:.1f} | "
            f"{r['gflop_per_s'] * 1e9 / peak:.0%} | {r['peak_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
