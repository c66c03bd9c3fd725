"""Where the cells are on a slide: a cheap low-resolution mask, so empty glass is never sent to a network.

Most of a smear's area is bare glass: bright and colorless in transmitted light. Tissue is found on a
coarse pyramid level (about 2,000 px a side) as pixels whose optical density, relative to the glass,
exceeds a threshold (Otsu's on the density, never below a floor so faint cytoplasm counts), then closed,
cleared of specks and grown by a margin so a cell at the edge of a clump is not cut off. The full
resolution is never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OVERVIEW_SIDE = 2048
MIN_DENSITY = 0.04  # optical density of the faintest cytoplasm that still counts as tissue
MARGIN_UM = 40.0  # grow the mask by about one large squamous cell's radius


@dataclass(frozen=True)
class TissueMask:
    """``mask`` at ``downsample`` × the level-0 pixel size; ``fraction`` of the slide's area it covers."""

    mask: np.ndarray
    downsample: float
    level: int

    @property
    def fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def covers(self, y0: int, x0: int, y1: int, x1: int) -> bool:
        """Whether the level-0 box [y0, y1) × [x0, x1) holds any tissue."""
        d = self.downsample
        r0, c0 = int(y0 / d), int(x0 / d)
        r1, c1 = max(int(np.ceil(y1 / d)), r0 + 1), max(int(np.ceil(x1 / d)), c0 + 1)
        return bool(self.mask[r0:r1, c0:c1].any())


def optical_density(image: np.ndarray) -> np.ndarray:
    """Per-pixel optical density (max over channels) relative to the glass, estimated as the brightest 1 %."""
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    density = np.zeros(pixels.shape[:2], np.float32)
    for c in range(min(pixels.shape[-1], 3)):  # channel by channel: a few 2-D float arrays, not H×W×3 ones
        channel = pixels[..., c].astype(np.float32)
        glass = np.percentile(channel, 99)
        transmission = np.clip(channel / np.maximum(glass, 1e-6), 1e-3, 1.0)
        np.maximum(density, -np.log(transmission), out=density)
    return density


def tissue_mask_of(image: np.ndarray, pixel_size_um: float | None = None) -> np.ndarray:
    """Tissue mask of an overview image (H×W or H×W×3) whose pixels are ``pixel_size_um`` wide."""
    from skimage import morphology
    from skimage.filters import threshold_otsu

    density = optical_density(image)
    if float(density.max()) <= MIN_DENSITY:
        return np.zeros(density.shape, bool)
    threshold = max(float(threshold_otsu(density)), MIN_DENSITY)
    mask = density > threshold
    radius = max(1, round(MARGIN_UM / pixel_size_um)) if pixel_size_um else max(1, round(max(mask.shape) / 200))
    mask = _erode(_dilate(mask, max(1, radius // 2)), max(1, radius // 2))  # closing
    mask = morphology.remove_small_objects(mask, max_size=max(4, radius**2 // 4))
    return _dilate(mask, radius)


# Disk dilation/erosion by distance transform: memory and time stay linear in the image whatever the
# radius (a 40 µm margin is 160 px at 0.25 µm/px, and footprint filters of that size run out of memory).
def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.distance_transform_edt(~mask) <= radius if mask.any() else mask


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.distance_transform_edt(mask) > radius if not mask.all() else mask


def detect_tissue(slide, max_side: int = OVERVIEW_SIDE) -> TissueMask:
    """Tissue mask of a :class:`~napari_cervix.io.slides.Slide` from its coarsest level ≤ ``max_side``."""
    level = slide.level_for(max_side)
    overview = slide.read(level, (slice(None), slice(None)))
    downsample = slide.downsamples[level]
    pixel = slide.pixel_size_um * downsample if slide.pixel_size_um else None
    return TissueMask(tissue_mask_of(overview, pixel), downsample, level)
