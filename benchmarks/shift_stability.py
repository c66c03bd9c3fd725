"""How reproducible the default color semantic model is when a field moves: labels of a CRIC field against
those of the same field shifted by glass, per setting (normalization, tile overlap and size, shift, flip TTA).

    .venv/bin/python benchmarks/shift_stability.py --fields ../shared/data/cric_fields/images

Each field is padded top and left by ``shift`` px of glass and segmented again; the padding is cut off and
the two label images compared: pixel agreement, nucleus IoU, and the share of nuclei (components, as
``cells_from_semantic`` finds them) found again within 5 px (one-to-one by centroid). "fixed normalization"
fits the intensity normalization to the unshifted field for both runs, so only the network and tiling
differ. One process, one thread per op (``torch.set_num_threads(1)``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

GLASS = (230, 228, 225)


def nucleus_centres(labels: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    from napari_cervix.semantic.postprocess import cells_from_semantic

    nuclei = cells_from_semantic(labels)[1]
    return np.array(ndimage.center_of_mass(nuclei > 0, nuclei, range(1, nuclei.max() + 1))).reshape(-1, 2)


def compare(field, model, shift: int, fixed_normalization: bool, **options) -> tuple[float, float, float]:
    """(pixel agreement, nucleus IoU, nuclei found again within 5 px) of ``field`` against itself shifted."""
    from scipy.optimize import linear_sum_assignment

    import napari_cervix.semantic.inference as inference

    padded = np.empty((field.shape[0] + shift, field.shape[1] + shift, 3), np.uint8)
    padded[:] = GLASS
    padded[shift:, shift:] = field
    build = inference.build_normalizer
    if fixed_normalization:
        fitted = build(model.card, field)
        inference.build_normalizer = lambda card, image: fitted
    try:
        a = inference.segment_semantic(field, model, estimate_scale=False, **options)
        b = inference.segment_semantic(padded, model, estimate_scale=False, **options)[shift:, shift:]
    finally:
        inference.build_normalizer = build
    nucleus_iou = ((a == 2) & (b == 2)).sum() / max(((a == 2) | (b == 2)).sum(), 1)
    ca, cb = nucleus_centres(a), nucleus_centres(b)
    distance = np.linalg.norm(ca[:, None] - cb[None], axis=-1)
    rows, cols = linear_sum_assignment(np.where(distance > 5, 1e9, distance))
    found = 2 * int((distance[rows, cols] <= 5).sum()) / max(len(ca) + len(cb), 1)
    return float((a == b).mean()), float(nucleus_iou), found


def main(argv=None) -> int:
    import torch

    from napari_cervix.io import read_image
    from napari_cervix.semantic.inference import load_semantic_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", required=True, help="folder of RGB field images (CRIC)")
    parser.add_argument("--first", type=int, default=2, help="index of the first field (sorted names)")
    parser.add_argument("--count", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    paths = sorted(Path(args.fields).glob("*.jpg"))[args.first : args.first + args.count]
    fields = [read_image(p)[..., :3] for p in paths]
    model = load_semantic_model("default", "rgb")
    settings = [
        ("default (512 px tiles, 64 overlap)", 200, False, {}),
        ("fixed normalization", 200, True, {}),
        ("fixed normalization, 128 overlap", 200, True, {"overlap": 128}),
        ("fixed normalization, 1024 px tiles, 256 overlap", 200, True, {"tile_size": 1024, "overlap": 256}),
        ("fixed normalization, shift 192", 192, True, {}),
        ("fixed normalization, shift 16", 16, True, {}),
        ("fixed normalization, shift 8", 8, True, {}),
        ("flip TTA", 200, False, {"tta": True}),
    ]
    print(f"{len(fields)} CRIC fields ({', '.join(p.name for p in paths)}), default color semantic model")
    print("| setting | shift px | pixel agreement | nucleus IoU | nuclei found again (5 px) |")
    print("| --- | --- | --- | --- | --- |")
    for name, shift, fixed, options in settings:
        agreement, iou, found = np.mean([compare(f, model, shift, fixed, **options) for f in fields], axis=0)
        print(f"| {name} | {shift} | {agreement:.4f} | {iou:.4f} | {found:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
