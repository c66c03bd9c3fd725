"""Input checks and intensity conversions shared by every task (one place for 'what is a valid image')."""

from __future__ import annotations

import numpy as np


class ImageError(ValueError):
    """An input image that cannot be processed; the message says why."""


def check_image(image, *, name: str = "image", min_size: int = 2) -> tuple[int, int, int]:
    """Validate a 2-D gray or H×W×3/4 color image (any array-like); returns (H, W, channels).

    Reads only the shape and dtype, so it is cheap for dask/zarr whole slides.
    """
    shape = tuple(int(s) for s in getattr(image, "shape", ()))
    dtype = np.dtype(getattr(image, "dtype", np.float64))
    if len(shape) == 2:
        channels = 1
    elif len(shape) == 3 and shape[-1] in (3, 4):
        channels = 3
    else:
        raise ImageError(
            f"{name} must be 2-D gray (H×W) or color (H×W×3); got shape {shape}. "
            "For a stack, pick one plane (e.g. image[0])."
        )
    if shape[0] < min_size or shape[1] < min_size:
        raise ImageError(f"{name} is {shape[0]}×{shape[1]} pixels; at least {min_size}×{min_size} is needed")
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise ImageError(f"{name} has non-numeric dtype {dtype}")
    return shape[0], shape[1], channels


#: ITU-R 601 luminance weights of R, G, B: the one RGB → gray conversion (numpy here, torch in the classifiers).
LUMINANCE = (0.299, 0.587, 0.114)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Luminance of an RGB(A) array (ITU-R 601 weights); 2-D input is returned unchanged."""
    image = np.asarray(image)
    if image.ndim == 3:
        rgb = image[..., :3].astype(np.float32)
        return rgb @ np.array(LUMINANCE, np.float32)
    return image


def to_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    return image[..., :3]


def color_kind(image) -> str:
    """ "rgb" for a color image whose channels differ, else "gray" (gray data saved as RGB counts as gray).

    Chooses between models trained on gray and on color input (see ``registry.default_model``).
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        rgb = image[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
            return "rgb"
    return "gray"


def intensity_range(dtype) -> tuple[float, float]:
    """Nominal range of a dtype: integers by their bit depth, floats assumed already in [0, 1]."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return 0.0, 1.0
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(max(info.min, 0)), float(info.max)
    return 0.0, 1.0


def to_unit_float(image: np.ndarray, *, dtype=None, name: str = "image") -> np.ndarray:
    """float32 in [0, 1] from 8/16-bit or float input; NaN/inf pixels are refused with a clear message.

    Integer images are scaled by their bit depth (a 12-bit camera image in uint16 whose maximum is far
    below 65535 is stretched by its own maximum instead, so it is not nearly black). Floats outside
    [0, 1] are min-max scaled.
    """
    image = np.asarray(image)
    dtype = np.dtype(dtype or image.dtype)
    if np.issubdtype(dtype, np.floating):
        if not np.all(np.isfinite(image)):
            bad = int(np.size(image) - np.count_nonzero(np.isfinite(image)))
            raise ImageError(f"{name} has {bad} NaN or infinite pixels; fill or mask them first")
        out = image.astype(np.float32)
        lo, hi = float(out.min()) if out.size else 0.0, float(out.max()) if out.size else 1.0
        if lo < 0.0 or hi > 1.0:
            out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
        return out
    lo, hi = intensity_range(dtype)
    out = image.astype(np.float32)
    if dtype == np.uint16 and out.size and out.max() < 4096:
        hi = max(float(out.max()), 1.0)  # 12-bit data in 16-bit containers
    return (out - lo) / (hi - lo)


class PercentileNormalizer:
    """Maps an image's ``low``/``high`` intensity percentiles to 0/1 (clipped to [0, 1.5]).

    Makes the models indifferent to exposure, bit depth and gray vs RGB. The percentiles come from a
    strided subsample of the whole image (cheap on a dask/zarr slide); tiles are then mapped one by
    one with :meth:`__call__`, so every tile of an image gets the same mapping. A constant image maps to
    zeros, never NaN.
    """

    def __init__(self, image, low: float = 1.0, high: float = 99.5, max_samples: int = 1 << 20):
        check_image(image)
        step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / max_samples)))
        sample = to_gray(np.asarray(image[::step, ::step])).astype(np.float32)
        if not np.all(np.isfinite(sample)):
            raise ImageError("image has NaN or infinite pixels; fill or mask them first")
        self.lo, self.hi = (float(v) for v in np.percentile(sample, [low, high]))

    def __call__(self, tile) -> np.ndarray:
        gray = to_gray(np.asarray(tile)).astype(np.float32)
        if not np.all(np.isfinite(gray)):
            raise ImageError("image has NaN or infinite pixels; fill or mask them first")
        span = self.hi - self.lo
        if span <= 1e-6 * max(abs(self.hi), 1.0):
            return np.zeros(gray.shape, np.float32)
        return np.clip((gray - self.lo) / span, 0.0, 1.5)
