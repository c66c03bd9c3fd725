"""Hand-made descriptors of a single-cell crop: stain color, nucleus/cytoplasm geometry, texture.

They are computed on exactly what the classifiers see (the square crop, N × C × S × S in [0, 1], and its
nucleus/cytoplasm mask {0 background, 1 cytoplasm, 2 nucleus}), so a cell cut from a smear and a Herlev
training cell are described the same way. Groups, in order (:func:`descriptor_names` gives every name):

* **color**: mean, std and 10/50/90th percentiles of R, G, B, hue, saturation, value, L*, a*, b* inside
  the nucleus, the cytoplasm, the background and the whole crop. Pap stain colors carry the diagnosis
  (orange/pink keratinized superficial cells, blue-green intermediate ones, hyperchromatic nuclei); gray
  crops give equal R = G = B and zero saturation, so gray models see the intensity part only.
* **geometry**: nucleus area, cell area (fractions of the crop) and the N/C area ratio (an area ratio is
  unchanged by Herlev's aspect-breaking resize), eccentricity, solidity, extent, axes and circularity of
  nucleus and cell.
* **texture**: gray-level co-occurrence contrast, homogeneity, energy, correlation and dissimilarity at
  distances 1, 2, 4 (averaged over 4 directions); uniform LBP histograms of the nucleus and of the crop;
  mean gray in 8 rings around the crop centre (the cell's radial profile).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..geometry import CYTOPLASM, NUCLEUS
from ..imaging import to_gray
from .features import LBP_UNIFORM_BINS, UNIFORM_LUT, lbp_codes

_CHANNELS = ("R", "G", "B", "hue", "saturation", "value", "L", "a", "b")
_REGIONS = ("nucleus", "cytoplasm", "background", "crop")
_STATS = ("mean", "std", "p10", "p50", "p90")
_SHAPE = ("eccentricity", "solidity", "extent", "major_axis", "minor_axis", "circularity")
_GLCM = ("contrast", "homogeneity", "energy", "correlation", "dissimilarity")
_GLCM_DISTANCES = (1, 2, 4)
_RINGS = 8


def descriptor_names() -> list[str]:
    names = [f"{region}_{channel}_{stat}" for region in _REGIONS for channel in _CHANNELS for stat in _STATS]
    names += ["nucleus_fraction", "cell_fraction", "nc_ratio"]
    names += [f"{part}_{shape}" for part in ("nucleus", "cell") for shape in _SHAPE]
    names += [f"glcm_{prop}_d{d}" for prop in _GLCM for d in _GLCM_DISTANCES]
    names += [f"nucleus_lbp_{i}" for i in range(LBP_UNIFORM_BINS)] + [f"crop_lbp_{i}" for i in range(LBP_UNIFORM_BINS)]
    names += [f"ring_{i}" for i in range(_RINGS)]
    return names


def _stats(values: np.ndarray) -> list[float]:
    """The :data:`_STATS` of each row of ``values`` (channels × pixels), row after row: one percentile call
    for all channels (per-channel calls were half of a field's grading time)."""
    if values.shape[1] == 0:
        return [0.0] * (len(_STATS) * len(values))
    percentiles = np.percentile(values, (10, 50, 90), axis=1)
    table = np.stack([values.mean(axis=1), values.std(axis=1), *percentiles], axis=1)
    return [float(v) for v in table.ravel()]


def _shape(region: np.ndarray, size: int) -> list[float]:
    from skimage.measure import label, regionprops

    props = regionprops(label(region.astype(np.uint8)))
    if not props:
        return [0.0] * len(_SHAPE)
    p = max(props, key=lambda r: r.area)
    circularity = 4 * np.pi * p.area / max(p.perimeter, 1.0) ** 2
    return [p.eccentricity, p.solidity, p.extent, p.axis_major_length / size, p.axis_minor_length / size, circularity]


def _uniform_lbp(codes: np.ndarray, region: np.ndarray) -> list[float]:
    values = codes[region]
    if values.size == 0:
        return [0.0] * LBP_UNIFORM_BINS
    return list(np.bincount(values, minlength=LBP_UNIFORM_BINS)[:LBP_UNIFORM_BINS] / values.size)


def crop_descriptor(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Descriptor vector of one C × S × S crop in [0, 1] (C = 1 or 3) with its {0, 1, 2} mask."""
    from skimage.color import rgb2hsv, rgb2lab
    from skimage.feature import graycomatrix, graycoprops

    crop = np.asarray(crop, np.float32)
    rgb = np.repeat(crop, 3, axis=0) if crop.shape[0] == 1 else crop[:3]
    rgb = np.clip(np.nan_to_num(rgb.transpose(1, 2, 0)), 0, 1)
    size = rgb.shape[0]
    gray = to_gray(rgb)
    hsv, lab = rgb2hsv(rgb), rgb2lab(rgb)
    channels = np.concatenate([rgb, hsv, lab.astype(np.float32)], axis=2).transpose(2, 0, 1)  # _CHANNELS order
    nucleus, cytoplasm = mask == NUCLEUS, mask == CYTOPLASM
    regions = (nucleus, cytoplasm, mask == 0, np.ones_like(nucleus))
    out: list[float] = []
    for region in regions:
        out += _stats(channels[:, region])
    cell = nucleus | cytoplasm
    out += [nucleus.mean(), cell.mean(), nucleus.sum() / max(cell.sum(), 1)]
    out += _shape(nucleus, size) + _shape(cell, size)
    levels = 32  # co-occurrence on 32 gray levels: enough for chromatin texture, stable on small crops
    quantized = np.minimum((gray * levels).astype(np.uint8), levels - 1)
    glcm = graycomatrix(
        quantized, _GLCM_DISTANCES, (0, np.pi / 4, np.pi / 2, 3 * np.pi / 4), levels=levels, symmetric=True, normed=True
    )
    for prop in _GLCM:
        out += list(graycoprops(glcm, prop).mean(axis=1))
    codes = UNIFORM_LUT[lbp_codes((gray * 255).astype(np.uint8))].astype(np.int64)
    out += _uniform_lbp(codes, nucleus) + _uniform_lbp(codes, np.ones_like(nucleus))
    yy, xx = np.indices(gray.shape)
    radius = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    step = size / 2 / _RINGS
    for ring in range(_RINGS):
        inside = (radius >= ring * step) & (radius < (ring + 1) * step)
        out.append(float(gray[inside].mean()) if inside.any() else 0.0)
    return np.nan_to_num(np.asarray(out, np.float32))


def crop_descriptors(crops: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """N × D descriptors of N × C × S × S crops and their N × S × S {0, 1, 2} masks."""
    crops = np.asarray(crops, np.float32)
    masks = np.asarray(masks)
    if len(crops) != len(masks):
        raise ValueError(f"{len(crops)} crops but {len(masks)} masks")
    if len(crops) == 0:
        return np.zeros((0, len(descriptor_names())), np.float32)
    return np.stack([crop_descriptor(c, m) for c, m in zip(crops, masks)])


def masks_for_crops(crops: np.ndarray, mask_fn: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """N × 2 × S × S one-hot (cytoplasm, nucleus) masks of crops, the masks the descriptors and the mask-fusion
    CNN read; ``mask_fn`` maps a gray crop to {0, 1, 2} (default: the Otsu fallback they were trained with)."""
    from .crops import otsu_semantic_mask, semantic_to_onehot

    mask_fn = mask_fn or otsu_semantic_mask
    gray = crops.mean(axis=1)
    return np.stack([semantic_to_onehot(mask_fn(g)) for g in gray]).astype(np.float32)


def onehot_to_semantic(masks: np.ndarray) -> np.ndarray:
    """N × 2 × S × S one-hot (cytoplasm, nucleus) → N × S × S {0 background, 1 cytoplasm, 2 nucleus}."""
    masks = np.asarray(masks) > 0.5
    return np.where(masks[:, 1], NUCLEUS, np.where(masks[:, 0], CYTOPLASM, 0)).astype(np.uint8)
