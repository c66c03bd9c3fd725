"""Reading single image files (tif/png/jpg/bmp) and binary masks stored as images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..imaging import check_image, to_gray

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def is_image_file(path) -> bool:
    path = Path(path)
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def image_files(folder) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if is_image_file(p))


def read_image(path) -> np.ndarray:
    """H×W gray or H×W×3 RGB array in the file's own dtype; an alpha channel is dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            image = tifffile.imread(path)
        else:
            import imageio.v3 as iio

            image = iio.imread(path)
    except Exception as exc:  # every codec raises its own type; the caller needs the file name
        raise ValueError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 2:  # gray + alpha
        image = image[..., 0]
    elif image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    check_image(image, name=str(path))
    return image


def read_mask(path, threshold: float = 127) -> np.ndarray:
    """H×W bool mask from an image file: True where the (gray) value is above ``threshold``.

    The threshold absorbs JPEG ringing around white-on-black masks.
    """
    image = read_image(path)
    return np.asarray(to_gray(image)) > threshold


def find_image(folder, stem: str) -> Path | None:
    """The image file ``folder/stem.<any image suffix>`` (tif preferred), or None."""
    for suffix in IMAGE_SUFFIXES:
        for candidate in (
            Path(folder) / f"{stem}{suffix}",
            Path(folder) / f"{stem}{suffix.upper()}",
        ):
            if candidate.is_file():
                return candidate
    return None
