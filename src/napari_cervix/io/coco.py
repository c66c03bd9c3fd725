"""COCO instance-segmentation JSON, categories ``cell`` (whole cell incl. nucleus) and ``nucleus``.

Reading accepts compressed RLE, uncompressed RLE and polygon segmentations; writing produces
compressed RLE with one ``nucleus`` annotation per connected nucleus component, loadable by
``pycocotools.coco.COCO``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ._atomic import atomic_path
from .images import read_image
from .sample import CellSample

CATEGORIES = [
    {"id": 1, "name": "cell", "supercategory": "cell"},
    {"id": 2, "name": "nucleus", "supercategory": "cell"},
]


def _decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):  # polygons: [[x0, y0, x1, y1, ...], ...]
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        counts = segmentation["counts"]
        rle = {
            "size": list(segmentation["size"]),
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
        }
    if tuple(rle["size"]) != (height, width):
        raise ValueError(f"segmentation size {tuple(rle['size'])} differs from the image's {(height, width)}")
    return mask_utils.decode(rle).astype(bool)


def read_coco(json_path) -> list[CellSample]:
    """One CellSample per COCO image: ``cells`` from ``cell`` annotations, ``nuclei`` = union of
    ``nucleus`` ones. ``file_name`` is resolved relative to the JSON's folder. A category missing
    from the file leaves the matching field ``None``; an image without annotations of a present
    category gets an empty mask.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise FileNotFoundError(f"COCO file not found: {json_path}")
    try:
        data = json.loads(json_path.read_text())
        images, annotations = data["images"], data["annotations"]
        category_ids = {c["name"].lower(): c["id"] for c in data["categories"]}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{json_path}: not a COCO instances file ({type(exc).__name__}: {exc})") from exc
    cell_id, nucleus_id = category_ids.get("cell"), category_ids.get("nucleus")
    if cell_id is None and nucleus_id is None:
        raise ValueError(f"{json_path}: no 'cell' or 'nucleus' category (found {sorted(category_ids)})")

    by_image: dict = {}
    for ann in annotations:
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    samples = []
    for info in images:
        try:
            anns = by_image.get(info["id"], [])
            samples.append(_coco_sample(json_path, info, anns, cell_id, nucleus_id))
        except KeyError as exc:
            raise ValueError(f"{json_path}: image or annotation entry lacks {exc}") from exc
    return samples


def _coco_sample(json_path: Path, info: dict, anns: list, cell_id, nucleus_id) -> CellSample:
    image_path = json_path.parent / info["file_name"]
    if not image_path.is_file():
        raise FileNotFoundError(f"{json_path}: image {info['file_name']!r} not found at {image_path}")
    image = read_image(image_path)
    height, width = image.shape[:2]
    if (info.get("height", height), info.get("width", width)) != (height, width):
        raise ValueError(
            f"{json_path}: {info['file_name']} is {height}×{width}, the JSON says "
            f"{info.get('height')}×{info.get('width')}"
        )
    cells, nuclei = [], np.zeros((height, width), bool)
    for ann in anns:
        if ann["category_id"] not in (cell_id, nucleus_id):
            continue
        try:
            mask = _decode_segmentation(ann["segmentation"], height, width)
        except Exception as exc:  # pycocotools raises bare Exception/TypeError on bad input
            raise ValueError(f"{json_path}: annotation {ann.get('id')}: {exc}") from exc
        if ann["category_id"] == cell_id:
            cells.append(mask)
        else:
            nuclei |= mask
    if cell_id is not None:
        cells = np.stack(cells) if cells else np.zeros((0, height, width), bool)
    return CellSample(
        image=image,
        cells=cells if cell_id is not None else None,
        nuclei=nuclei if nucleus_id is not None else None,
        label=info.get("label"),
        name=Path(info["file_name"]).stem,
        source=str(image_path),
        meta={"dataset": "coco", "annotation": str(json_path), "image_id": info["id"]},
    )


def _annotation(mask: np.ndarray, ann_id: int, image_id: int, category_id: int) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": {
            "size": [int(s) for s in rle["size"]],
            "counts": rle["counts"].decode("ascii"),
        },
        "area": int(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": 0,
    }


def write_coco(samples, json_path, images_dir=None) -> Path:
    """Write ``samples`` as a COCO instances file: images as ``images_dir/NAME.tif``, masks as RLE.

    ``images_dir`` defaults to ``images/`` beside the JSON; ``file_name`` is stored relative to the
    JSON's folder. Each cell is one ``cell`` annotation; each connected nucleus component one
    ``nucleus``. A Herlev-style ``label`` is kept as an extra ``label`` field of the image entry.
    """
    import tifffile

    json_path = Path(json_path)
    images_dir = json_path.parent / "images" if images_dir is None else Path(images_dir)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations, seen = [], [], {}
    eight_connected = np.ones((3, 3), bool)
    for image_id, sample in enumerate(samples, start=1):
        if sample.name in seen:
            raise ValueError(
                f"write_coco: two samples are named {sample.name!r} ({seen[sample.name]} and "
                f"{sample.source}); names become file names and must be unique"
            )
        seen[sample.name] = sample.source
        image = np.asarray(sample.image)
        height, width = image.shape[:2]
        image_path = images_dir / f"{sample.name}.tif"
        tifffile.imwrite(image_path, image, photometric="rgb" if image.ndim == 3 else "minisblack")
        entry = {
            "id": image_id,
            "file_name": Path(os.path.relpath(image_path, json_path.parent)).as_posix(),
            "height": int(height),
            "width": int(width),
        }
        if sample.label is not None:
            entry["label"] = sample.label
        images.append(entry)
        for cell in [] if sample.cells is None else sample.cells:
            annotations.append(_annotation(np.asarray(cell, bool), len(annotations) + 1, image_id, 1))
        if sample.nuclei is not None:
            components, count = ndi.label(np.asarray(sample.nuclei, bool), structure=eight_connected)
            for k in range(1, count + 1):
                annotations.append(_annotation(components == k, len(annotations) + 1, image_id, 2))
    document = {
        "info": {"description": "napari-cervix export"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(document))
    return json_path
