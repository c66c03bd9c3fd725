"""ISBI 2014 real EDF images with nucleus ground truth (``EDFxxx.png`` + ``EDFxxx_GT.png``).

The GT comes in two variants: filled masks (uint16 {0, 32896}) and 1-pixel nucleus outlines (uint8,
one gray level per nucleus). The variant is told from the pixels, so renamed or re-saved files still
read correctly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .images import IMAGE_SUFFIXES, find_image, read_image
from .sample import CellSample

GT_SUFFIX = "_GT"

#: Below this share of mask pixels with a full 4-neighbourhood in the mask, the mask is thin lines.
_OUTLINE_INTERIOR_FRACTION = 0.2


def nucleus_gt_variant(mask: np.ndarray) -> str:
    """'outline' when ``mask`` is (nearly) all one-pixel lines, else 'filled'."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return "filled"
    interior = ndi.binary_erosion(mask)
    return "outline" if interior.sum() < _OUTLINE_INTERIOR_FRACTION * mask.sum() else "filled"


def _read_gt(path) -> tuple[np.ndarray, str]:
    gt = read_image(path)
    mask = (gt.max(axis=-1) if gt.ndim == 3 else gt) > 0
    variant = nucleus_gt_variant(mask)
    return (ndi.binary_fill_holes(mask) if variant == "outline" else mask), variant


def read_nucleus_gt(path) -> np.ndarray:
    """H×W bool nucleus mask from a GT image: any non-zero pixel; outlines are filled."""
    return _read_gt(path)[0]


def read_edf_nuclei(folder) -> list[CellSample]:
    """Each ``NAME_GT.<ext>`` in ``folder`` and its image ``NAME.<ext>`` → CellSample, nuclei."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"EDF nucleus folder not found: {folder}")
    gt_files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.endswith(GT_SUFFIX))
    if not gt_files:
        raise FileNotFoundError(f"{folder}: no NAME{GT_SUFFIX}.png nucleus ground-truth files")
    samples = []
    for gt_path in gt_files:
        name = gt_path.stem[: -len(GT_SUFFIX)]
        image_path = find_image(folder, name)
        if image_path is None:
            raise FileNotFoundError(f"{gt_path}: its image {folder / name}.png is missing")
        image, (nuclei, variant) = read_image(image_path), _read_gt(gt_path)
        if nuclei.shape != image.shape[:2]:
            raise ValueError(f"{gt_path}: mask is {nuclei.shape}, {image_path} is {image.shape[:2]}")
        samples.append(
            CellSample(
                image=image,
                nuclei=nuclei,
                name=name,
                source=str(image_path),
                meta={"dataset": "edf-nuclei", "annotation": str(gt_path), "gt_variant": variant},
                partial_annotation=True,  # nuclei only: cytoplasm and glass are not told apart
            )
        )
    return samples
