"""How well nucleus pseudo-masks grown from points match true nucleus masks, as a markdown table.

    .venv/bin/python benchmarks/pseudo_masks.py [--data ../shared/data]

The CRIC fields have only points, so :mod:`napari_cervix.pseudo_labels` is checked where true masks
exist: Herlev severe-dysplasia nuclei (RGB, its :func:`~napari_cervix.pseudo_labels.nuclear_stain`; one
image per cell: most cells are there only as ``flipped_``/``mirrored_``/``rotated_NNN_`` copies, the
first is used) and the real ISBI EDF frames (gray: darkness stands in for
hematoxylin). Each true nucleus (8-connected component) gives one point, its centroid, as an annotator's
click at the nucleus centre would; all points of an image are grown together, as on a CRIC field, and
each pseudo-nucleus is compared with its own true nucleus.

Herlev crops were enlarged to 512² (nucleus radius 70–230 px, median 110), far beyond the CRIC size prior
(radius 5–40 px); every Herlev image is shrunk by the same fixed factor, :data:`HERLEV_SCALE`, which puts
its median nucleus at about 22 px — the scale of a large abnormal CRIC nucleus — without looking at any
image's own mask. EDF nuclei (radius 7–14 px) are used as they are.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_cervix.io import load_dataset
from napari_cervix.pseudo_labels import nuclear_stain, point_nuclei

#: True nuclei smaller than this (pixels) are annotation specks, not nuclei to click.
MIN_TRUE_AREA = 30
#: One shrink factor for every Herlev image (see the module docstring).
HERLEV_SCALE = 0.2


def one_per_cell(samples) -> list:
    """The first sample of each cell, augmented copies (``flipped_``, ``rotated_120_``, …) folded in."""
    seen = {}
    for sample in samples:
        seen.setdefault(re.sub(r"^((flipped|mirrored|rotated_\d+)_)+", "", sample.name), sample)
    return list(seen.values())


def rescaled(sample, factor: float):
    """``sample`` with image and nucleus mask resized by ``factor`` (no copy when 1)."""
    if factor == 1:
        return sample
    from skimage.transform import rescale

    image = rescale(sample.image, factor, channel_axis=-1 if sample.image.ndim == 3 else None, anti_aliasing=True)
    nuclei = rescale(sample.nuclei.astype(float), factor, anti_aliasing=True) > 0.5
    return type(sample)(image=(image * 255).astype(np.uint8), nuclei=nuclei, name=sample.name)


def nucleus_scores(sample) -> list[tuple[float, float]]:
    """(Dice, IoU) of each true nucleus of ``sample`` against the pseudo-nucleus of its centroid."""
    truth, count = ndi.label(sample.nuclei, structure=np.ones((3, 3), bool))
    index = np.arange(1, count + 1)
    keep = index[np.asarray(ndi.sum(np.ones_like(truth), truth, index)) >= MIN_TRUE_AREA]
    points = np.array(ndi.center_of_mass(np.ones_like(truth), truth, keep)).reshape(-1, 2)
    pseudo = point_nuclei(nuclear_stain(sample.image), points)
    scores = []
    for k, label in enumerate(keep):
        true_mask, pred_mask = truth == label, pseudo == k + 1
        inter = np.logical_and(true_mask, pred_mask).sum()
        total = true_mask.sum() + pred_mask.sum()
        scores.append((2 * inter / total, inter / (total - inter)))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    args = parser.parse_args()
    sets = {
        f"Herlev severe nuclei (RGB, ×{HERLEV_SCALE})": (f"pairs:{args.data}/herlev_nuclei_severe", HERLEV_SCALE),
        "ISBI EDF frames (gray)": (f"edf-nuclei:{args.data}/isbi2014_edf", 1.0),
    }
    print("| data | images | nuclei | Dice mean | Dice median | Dice > 0.7 | IoU mean | IoU median | s/image |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, (spec, factor) in sets.items():
        samples = [rescaled(s, factor) for s in one_per_cell(load_dataset(spec))]
        started = time.perf_counter()
        scores = np.array([score for sample in samples for score in nucleus_scores(sample)]).reshape(-1, 2)
        seconds = (time.perf_counter() - started) / max(len(samples), 1)
        dice, iou = scores[:, 0], scores[:, 1]
        print(
            f"| {label} | {len(samples)} | {len(scores)} | {dice.mean():.3f} | {np.median(dice):.3f} | "
            f"{(dice > 0.7).mean():.1%} | {iou.mean():.3f} | {np.median(iou):.3f} | {seconds:.2f} |"
        )


if __name__ == "__main__":
    main()
