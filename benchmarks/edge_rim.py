"""Foreground a semantic model paints along an image's edge: on real CRIC fields and on flat glass, as a table.

    .venv/bin/python benchmarks/edge_rim.py [--data ../shared/data] [--model NAME|FILE …] [--fields 12]

Per model, over the first ``--fields`` CRIC validation fields (the semantic trainer's split), run at
their own grid (``estimate_scale=False``): the share of the outer 3 px frame's bright pixels (the field's
brightest 30 %, mostly glass) that the model calls foreground, and as a control the share of all pixels
of the 3–20 px band inside it. Then a generated 512² RGB smear on a 1024 × 2560 flat-glass slide, at
0.32 µm/px: foreground pixels in the image's outer rows and columns. A model that reacts to the image edge
shows a frame share above its band share. Data: CRIC Cervix (Rezende et al., Sci. Data 8:151, 2021;
CC BY 4.0).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def edge_band(shape, inner: int, outer: int) -> np.ndarray:
    """Pixels at least ``inner`` and less than ``outer`` px from the image's edge."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    depth = np.minimum(np.minimum(rows, shape[0] - 1 - rows), np.minimum(cols, shape[1] - 1 - cols))
    return (depth >= inner) & (depth < outer)


def main() -> None:
    import napari_cervix as nc
    from napari_cervix.io.cric import read_cric
    from napari_cervix.semantic.data import split_training_samples
    from napari_cervix.synth import generate_smear

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--model", nargs="+", default=["unet-mobilenet_v2-rgb"])
    parser.add_argument("--fields", type=int, default=12)
    args = parser.parse_args()

    samples = read_cric(Path(args.data) / "cric_fields", pseudo_masks=False)
    fields = split_training_samples([(s, False) for s in samples], 0.2, 0)[1][: args.fields]
    slide = np.full((1024, 2560, 3), 235, np.uint8)
    for k, x in enumerate((100, 900)):
        slide[256:768, x : x + 512] = generate_smear((512, 512), n_cells=6, seed=20 + k, rgb=True).image
    print(
        f"| model | bright frame px foreground ({len(fields)} CRIC fields) | 3–20 px band foreground | "
        "slide on glass: foreground px in the last row / right column |"
    )
    print("| --- | --- | --- | --- |")
    for model in args.model:
        frame, band = [], []
        for sample in fields:
            labels = nc.segment_semantic(sample.image, model=model, estimate_scale=False) > 0
            gray = sample.image.mean(-1)
            bright = gray > np.percentile(gray, 70)
            outer = edge_band(labels.shape, 0, 3)
            frame.append(labels[outer & bright].mean())
            band.append(labels[edge_band(labels.shape, 3, 20)].mean())
        on_slide = nc.segment_semantic(slide, model=model, pixel_size_um=0.32) > 0
        print(
            f"| {model} | {np.mean(frame):.3f} | {np.mean(band):.3f} | {on_slide[-1].sum()} / {on_slide[:, -1].sum()} |"
        )


if __name__ == "__main__":
    main()
