"""Fully connected CRF refinement (paper 000) by mean-field inference, own implementation.

No maintained dense-CRF package installs here (pydensecrf/pydensecrf2/SimpleCRF have no wheels), so:
unary = −log P from the network; Potts pairwise term with a Gaussian (smoothness) kernel over position
and a bilateral (appearance) kernel over position + gray level. The Gaussian kernel is an exact
``gaussian_filter``; the bilateral kernel over *all* pixel pairs is computed on a bilateral grid
(splat into a coarse (y, x, intensity) grid, blur, slice back) — the same approximation idea as the
permutohedral lattice of Krähenbühl & Koltun, exact up to the grid's sampling. Messages are
normalized (each kernel is a weighted average), so the weights are comparable across image sizes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def bilateral_filter(values: np.ndarray, guide: np.ndarray, sigma_xy: float, sigma_intensity: float) -> np.ndarray:
    """Normalized bilateral filter of each channel of ``values`` (C×H×W) guided by ``guide`` (H×W in [0,1])."""
    h, w = guide.shape
    gy = np.arange(h)[:, None] / sigma_xy
    gx = np.arange(w)[None, :] / sigma_xy
    gz = np.clip(guide, 0, 1.5) / sigma_intensity
    coords = np.stack(np.broadcast_arrays(gy, gx, gz)).reshape(3, -1)
    shape = tuple(int(np.ceil(c.max())) + 2 for c in coords)
    cells = np.round(coords).astype(int)
    flat = np.ravel_multi_index(tuple(cells), shape)
    size = int(np.prod(shape))
    norm = ndimage.gaussian_filter(np.bincount(flat, minlength=size).reshape(shape).astype(np.float32), 1.0)
    norm_at = ndimage.map_coordinates(norm, coords, order=1)
    out = np.empty_like(values, dtype=np.float32)
    for c, channel in enumerate(values):
        grid = np.bincount(flat, weights=channel.ravel(), minlength=size).reshape(shape).astype(np.float32)
        grid = ndimage.gaussian_filter(grid, 1.0)
        out[c] = (ndimage.map_coordinates(grid, coords, order=1) / np.maximum(norm_at, 1e-6)).reshape(h, w)
    return out


def dense_crf(
    probabilities: np.ndarray,
    image: np.ndarray,
    *,
    iterations: int = 5,
    gaussian_sigma: float = 3.0,
    gaussian_weight: float = 1.0,
    bilateral_sigma_xy: float = 30.0,
    bilateral_sigma_intensity: float = 0.1,
    bilateral_weight: float = 2.0,
) -> np.ndarray:
    """Refined class probabilities (C×H×W) from network probabilities and the normalized gray image."""
    probabilities = np.asarray(probabilities, np.float32)
    image = np.asarray(image, np.float32)
    if probabilities.ndim != 3 or probabilities.shape[1:] != image.shape:
        raise ValueError(f"probabilities {probabilities.shape} do not match image {image.shape}")
    unary = -np.log(np.clip(probabilities, 1e-6, 1.0))
    q = probabilities
    for _ in range(iterations):
        smooth = np.stack([ndimage.gaussian_filter(c, gaussian_sigma) for c in q])
        appearance = bilateral_filter(q, image, bilateral_sigma_xy, bilateral_sigma_intensity)
        # Potts model: the message to label l is (sum over all labels) − (label l's); the sum is the
        # same for every label and cancels in the softmax, leaving −(weighted kernels of q_l).
        energy = unary - gaussian_weight * smooth - bilateral_weight * appearance
        energy -= energy.min(axis=0, keepdims=True)
        q = np.exp(-energy)
        q /= q.sum(axis=0, keepdims=True)
    return q
