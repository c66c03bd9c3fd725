"""Folder layouts: class folders (Herlev: folder name = class) and image/mask folder pairs."""

from __future__ import annotations

from pathlib import Path

from .images import find_image, image_files, read_image, read_mask
from .sample import CellSample


def read_class_folders(folder) -> list[CellSample]:
    """A labelled CellSample per image in each sub-folder of ``folder`` (folder name = label)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"class-folder dataset not found: {folder}")
    samples = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for image_path in image_files(class_dir):
            samples.append(
                CellSample(
                    image=read_image(image_path),
                    label=class_dir.name,
                    name=image_path.stem,
                    source=str(image_path),
                    meta={"dataset": "herlev"},
                )
            )
    if not samples:
        raise FileNotFoundError(f"{folder}: no class sub-folders with images (expected CLASS/NAME.jpg)")
    return samples


def read_mask_pairs(folder, threshold: float = 127) -> list[CellSample]:
    """``images/NAME.ext`` with nucleus mask ``masks/NAME.ext`` (any suffix; mask > threshold)."""
    folder = Path(folder)
    images_dir, masks_dir = folder / "images", folder / "masks"
    for needed in (images_dir, masks_dir):
        if not needed.is_dir():
            raise FileNotFoundError(f"{folder}: image/mask pairs need a folder {needed}")
    samples = []
    for image_path in image_files(images_dir):
        mask_path = find_image(masks_dir, image_path.stem)
        if mask_path is None:
            raise FileNotFoundError(f"{image_path}: no mask {masks_dir / image_path.stem}.* for it")
        image, nuclei = read_image(image_path), read_mask(mask_path, threshold)
        if nuclei.shape != image.shape[:2]:
            raise ValueError(f"{mask_path}: mask is {nuclei.shape}, {image_path} is {image.shape[:2]}")
        samples.append(
            CellSample(
                image=image,
                nuclei=nuclei,
                name=image_path.stem,
                source=str(image_path),
                meta={"dataset": "pairs", "annotation": str(mask_path)},
                partial_annotation=True,  # nucleus masks only: the cell around it is not annotated
            )
        )
    if not samples:
        raise FileNotFoundError(f"{images_dir}: no images")
    return samples
