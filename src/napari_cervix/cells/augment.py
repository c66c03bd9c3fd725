"""Batch augmentation on the training device (torch), so a GPU run is not bound by a CPU data loader.

Cells have no preferred orientation and Herlev's crops vary in zoom, so every sample gets a random
rotation (any angle), flip, zoom and shift; intensities get a random gamma, blur and noise (the networks
standardize each input, so plain brightness/contrast changes would be no-ops). Mask channels (for the
fusion model) follow the same geometry and skip the intensity changes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, low: float, high: float, generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def augment_batch(
    images: torch.Tensor,
    masks: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    zoom: tuple[float, float] = (0.85, 1.2),
    shift: float = 0.08,
    gamma: tuple[float, float] = (0.7, 1.4),
    noise: float = 0.03,
    blur_probability: float = 0.3,
    channel_gain: float = 0.0,
):
    """Random geometric + intensity augmentation of B×C×H×W images in [0, 1] (and B×2×H×W masks)."""
    batch, channels, height, width = images.shape
    device = images.device
    angle = _uniform(batch, 0.0, 2 * math.pi, generator, device)
    scale = 1.0 / _uniform(batch, zoom[0], zoom[1], generator, device)  # >1 zoom = sample a smaller area
    flip = torch.where(torch.rand(batch, generator=generator, device=device) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.zeros(batch, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    theta[:, :, 2] = (torch.rand(batch, 2, generator=generator, device=device) * 2 - 1) * shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    stacked = images if masks is None else torch.cat([images, masks], 1)
    stacked = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    images, masks = (stacked, None) if masks is None else (stacked[:, :channels], stacked[:, channels:])

    exponent = torch.exp(_uniform(batch, math.log(gamma[0]), math.log(gamma[1]), generator, device))
    images = images.clamp(0, 1) ** exponent.view(batch, 1, 1, 1)
    if channel_gain and channels > 1:  # stain variation between labs, for color models
        gains = 1 + (torch.rand(batch, channels, 1, 1, generator=generator, device=device) * 2 - 1) * channel_gain
        images = (images * gains).clamp(0, 1)
    if blur_probability > 0:
        blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        pick = (torch.rand(batch, 1, 1, 1, generator=generator, device=device) < blur_probability).float()
        images = pick * blurred + (1 - pick) * images
    if noise > 0:
        sigma = _uniform(batch, 0.0, noise, generator, device).view(batch, 1, 1, 1)
        images = images + sigma * torch.randn(images.shape, generator=generator, device=device)
    return images, masks


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 rotations/flips of a square batch (test-time augmentation)."""
    x = torch.rot90(x, k % 4, dims=(2, 3))
    return torch.flip(x, dims=(3,)) if k >= 4 else x
