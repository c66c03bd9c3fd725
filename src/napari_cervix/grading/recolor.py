"""Another lab's colors: recoloring a field as another stain or microscope would, and undoing the light.

Users bring fields stained, lit and white-balanced by their own lab. Two things differ from CRIC's: the
**stain** (how much hematoxylin and eosin the cells took up: optical densities scaled, by colour
deconvolution) and the **light** (lamp, camera white balance and exposure: each channel scaled). The light
can be measured on the field itself, since bare glass is white: :func:`white_balance_gains` finds the glass
(the brightest tenth of the field) and scales each channel so that it is white again. The stain cannot be
measured that way, so the grader is trained on recolored copies of its fields (:func:`random_recoloring`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Share of a field's brightest pixels (by mean of R, G, B) taken as its glass.
GLASS_SHARE = 0.1
#: Bounds of a white-balance gain (a lamp may leave blue at two thirds of red).
GAIN_LIMITS = (0.67, 1.5)
#: Below this mean brightness the "glass" is cytoplasm (a field or tile without bare glass): left as it is.
MIN_GLASS = 0.55


@dataclass(frozen=True)
class Recoloring:
    """Stain optical densities scaled (``hematoxylin``, ``eosin``), then each channel scaled (``light``)."""

    hematoxylin: float = 1.0
    eosin: float = 1.0
    light: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb``: H×W×3 float in [0, 1] (white glass ≈ 1) → the recolored image, float32 in [0, 1]."""
        from ..semantic.data import jitter_stains

        out = np.asarray(rgb, np.float32)
        if (self.hematoxylin, self.eosin) != (1.0, 1.0):
            out = jitter_stains(out, (self.hematoxylin, self.eosin, 1.0), (0.0, 0.0, 0.0))
        return np.clip(out * np.asarray(self.light, np.float32), 0.0, 1.0)

    def on_image(self, image) -> np.ndarray:
        """An RGB image of any bit depth → the recolored image as 8-bit RGB, as a camera would save it."""
        from ..cells.crops import unit_intensity

        return np.round(self(unit_intensity(np.asarray(image))[..., :3]) * 255).astype(np.uint8)


def random_recoloring(rng: np.random.Generator) -> Recoloring:
    """A plausible other lab: each stain's density ×0.7–1.4 (log-uniform), each channel's light ×0.8–1.0
    relative to the brightest, the whole exposure ×0.85–1.05."""
    hematoxylin, eosin = np.exp(rng.uniform(np.log(0.7), np.log(1.4), 2))
    light = rng.uniform(0.8, 1.0, 3)
    light = light / light.max() * rng.uniform(0.85, 1.05)
    return Recoloring(float(hematoxylin), float(eosin), tuple(float(v) for v in light))


def white_balance_gains(image, step: int = 4) -> np.ndarray:
    """Per-channel gains (3,) that make the field's glass white: 1 / the median color of its brightest
    :data:`GLASS_SHARE` of pixels (every ``step``-th pixel in each direction read), bounded by
    :data:`GAIN_LIMITS`; ones when that color is darker than :data:`MIN_GLASS` (no glass in view).
    ``image``: H×W×3 (or H×W gray), integers by their bit depth or floats in [0, 1]."""
    from ..cells.crops import unit_intensity

    pixels = unit_intensity(np.asarray(image[::step, ::step]))
    pixels = np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels[..., :3]  # gray: equal
    pixels = pixels.reshape(-1, 3)
    brightness = pixels.mean(axis=1)
    glass = pixels[brightness >= np.quantile(brightness, 1.0 - GLASS_SHARE)]
    white = np.median(glass, axis=0)
    if white.mean() < MIN_GLASS:
        return np.ones(3, np.float32)
    return np.clip(1.0 / np.maximum(white, 1e-3), *GAIN_LIMITS).astype(np.float32)
