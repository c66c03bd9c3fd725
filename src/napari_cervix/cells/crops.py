"""Turning cells into classifier inputs: resized single-cell crops and their nucleus/cytoplasm masks.

Herlev cells (the training data) are tight crops around one cell resized to a square without keeping the
aspect ratio, so a cell from a smear is cropped the same way: its bounding box plus a small margin,
resized to the classifier's square input. The crop is *mask-aware*: pixels farther than the margin from
the cell's own mask (neighbouring and overlapping cells) are replaced by the crop's background level, so
the classifier sees the cell it is asked about.

The mask + image fusion classifier also needs a nucleus/cytoplasm mask. When the nuclei are known (given
to :func:`classify_cells`) the mask comes from them; otherwise from a mask function: the registered
semantic model when there is one, else :func:`otsu_semantic_mask`, a simple three-class Otsu split
(documented fallback: good on clean single cells, rough on cluttered ones).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..geometry import CYTOPLASM, NUCLEUS, grow_box
from ..imaging import to_gray, to_rgb

#: Fraction of the cell's larger bounding-box side added on every side of a crop.
CROP_MARGIN = 0.1


def unit_intensity(image: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] (integers by bit depth, floats min–max scaled if outside); NaN → the median."""
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.floating):
        out = image.astype(np.float32)
        finite = np.isfinite(out)
        if not finite.all():
            out = np.where(finite, out, np.median(out[finite]) if finite.any() else 0.0).astype(np.float32)
        lo, hi = (float(out.min()), float(out.max())) if out.size else (0.0, 1.0)
        if lo < 0.0 or hi > 1.0:
            out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
        return out
    if image.dtype == bool:
        return image.astype(np.float32)
    info = np.iinfo(image.dtype)
    top = float(info.max)
    if image.dtype == np.uint16 and image.size and image.max() < 4096:
        top = max(float(image.max()), 1.0)  # 12-bit data in 16-bit containers
    return image.astype(np.float32) / top


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """H×W×channels float32 in [0, 1]: gray (luminance) for 1 channel, RGB (gray repeated) for 3."""
    image = unit_intensity(image)
    if channels == 1:
        return to_gray(image).astype(np.float32)[..., None]
    if channels == 3:
        return to_rgb(image).astype(np.float32)
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def resize_square(image: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
    """Resize H×W(×C) to size×size (aspect not kept, as Herlev's crops); area filter when shrinking."""
    import cv2

    height, width = image.shape[:2]
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif height >= size and width >= size:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interpolation)
    if image.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def otsu_semantic_mask(gray: np.ndarray) -> np.ndarray:
    """Fallback nucleus/cytoplasm mask of a single-cell crop: uint8 {0 bg, 1 cytoplasm, 2 nucleus}.

    Three-class Otsu on the smoothed crop: the darkest class is nucleus, the middle one cytoplasm (bright
    field: nuclei absorb most). The nucleus is the dark component that is large and near the crop's
    centre; the cell is the filled non-background component holding it.
    """
    from skimage.filters import gaussian, threshold_multiotsu

    gray = np.asarray(gray, np.float32)
    if gray.ndim == 3:
        gray = gray[..., 0] if gray.shape[-1] == 1 else to_gray(gray)
    height, width = gray.shape
    smooth = gaussian(gray, sigma=max(1.0, min(height, width) / 96))
    if float(smooth.max() - smooth.min()) < 1e-6:
        return np.ones((height, width), np.uint8)  # flat crop: nothing to split, call it all cytoplasm
    try:
        low, high = threshold_multiotsu(smooth, classes=3)
    except ValueError:
        return np.ones((height, width), np.uint8)
    dark, labels_count = ndi.label(smooth <= low)
    out = np.zeros((height, width), np.uint8)
    cell = ndi.binary_fill_holes(smooth <= high)
    if labels_count:
        ys, xs = np.indices((height, width))
        index = np.arange(1, labels_count + 1)
        area = ndi.sum_labels(np.ones_like(gray), dark, index)
        cy = ndi.sum_labels(ys, dark, index) / area
        cx = ndi.sum_labels(xs, dark, index) / area
        spread = 0.35 * max(height, width)
        score = area * np.exp(-((cy - height / 2) ** 2 + (cx - width / 2) ** 2) / (2 * spread**2))
        nucleus = ndi.binary_fill_holes(dark == index[np.argmax(score)])
        cell_parts, _ = ndi.label(cell | nucleus)
        owner = np.bincount(cell_parts[nucleus]).argmax() if nucleus.any() else 0
        cell = cell_parts == owner if owner else cell
        out[cell] = CYTOPLASM
        out[nucleus] = NUCLEUS
    else:
        out[cell] = CYTOPLASM
    return out


def semantic_to_onehot(semantic: np.ndarray) -> np.ndarray:
    """{0,1,2} labels → 2×H×W float32 one-hot (cytoplasm, nucleus) for the mask branch."""
    semantic = np.asarray(semantic)
    return np.stack([semantic == CYTOPLASM, semantic == NUCLEUS]).astype(np.float32)


def crop_box(bbox: tuple[int, int, int, int], shape: tuple[int, int], margin: float = CROP_MARGIN):
    """Bounding box (y0, x0, y1, x1) grown by ``margin`` × its larger side, clipped to the image."""
    y0, x0, y1, x1 = (int(v) for v in bbox)
    pad = max(2, int(round(margin * max(y1 - y0, x1 - x0))))
    return (*grow_box(bbox, pad, shape), pad)


def isolate_cell(crop: np.ndarray, cell_mask: np.ndarray, pad: int) -> np.ndarray:
    """Replace pixels farther than ``pad`` from the cell mask with the crop's background level.

    The fill is the median of the pixels outside the grown mask (the local background), so the crop
    keeps a natural-looking surround without the neighbouring cells.
    """
    grown = ndi.binary_dilation(cell_mask, iterations=max(1, pad // 2)) if pad > 1 else cell_mask
    outside = ~grown
    if not outside.any():
        return crop
    fill = np.median(crop[outside], axis=0)
    out = crop.copy()
    out[outside] = fill
    return out
