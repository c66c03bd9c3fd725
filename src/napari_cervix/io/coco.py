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

from ..cellset import CellSet, Masks
from ..geometry import label_components
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
    nuclei = np.zeros((height, width), bool)

    def decoded(ann):
        try:
            return _decode_segmentation(ann["segmentation"], height, width)
        except Exception as exc:  # pycocotools raises bare Exception/TypeError on bad input
            raise ValueError(f"{json_path}: annotation {ann.get('id')}: {exc}") from exc

    for ann in anns:
        if ann["category_id"] == nucleus_id:
            nuclei |= decoded(ann)
    cells = None
    if cell_id is not None:  # decoded and cropped one at a time: memory follows the cells
        cell_masks = (decoded(ann) for ann in anns if ann["category_id"] == cell_id)
        cells = CellSet.from_stack(cell_masks, shape=(height, width))
    return CellSample(
        image=image,
        cells=cells,
        nuclei=nuclei if nucleus_id is not None else None,
        label=info.get("label"),
        name=Path(info["file_name"]).stem,
        source=str(image_path),
        meta={"dataset": "coco", "annotation": str(json_path), "image_id": info["id"]},
        partial_annotation=_cells_incomplete(cells, nuclei),
    )


def _cells_incomplete(cells: CellSet | None, nuclei: np.ndarray) -> bool:
    """COCO has no "partially annotated" flag, so tell it from the masks: without cell masks, or with
    a nucleus lying mostly outside every annotated cell (ISBI 2015 frames: all nuclei, some cells),
    the image's cells are not all annotated."""
    if cells is None:
        return True
    covered = cells.union()
    components = label_components(nuclei)
    count = int(components.max())
    if not count:
        return False
    inside = ndi.mean(covered, components, index=np.arange(1, count + 1))
    return bool(np.any(np.asarray(inside) < 0.5))


def _annotations(masks: Masks, first_id: int, image_id: int, category_id: int) -> list[dict]:
    """COCO annotations of sparse masks, compressed RLE computed per mask from its crop."""
    from pycocotools import mask as mask_utils

    return [
        {
            "id": first_id + k,
            "image_id": image_id,
            "category_id": category_id,
            "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
            "area": int(mask_utils.area(rle)),
            "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "iscrowd": 0,
        }
        for k, rle in enumerate(masks.rle())
    ]


def write_coco(samples, json_path, images_dir=None) -> Path:
    """Write ``samples`` as a COCO instances file: images as ``images_dir/NAME.tif``, masks as RLE.

    ``images_dir`` defaults to ``images/`` beside the JSON; ``file_name`` is stored relative to the
    JSON's folder. Each cell is one ``cell`` annotation; each 8-connected nucleus component one
    ``nucleus``. A Herlev-style ``label`` is kept as an extra ``label`` field of the image entry.
    """
    import tifffile

    json_path = Path(json_path)
    images_dir = json_path.parent / "images" if images_dir is None else Path(images_dir)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations, seen = [], [], {}
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
        if sample.cells is not None:
            annotations += _annotations(sample.cells.cells, len(annotations) + 1, image_id, 1)
        if sample.nuclei is not None:
            nuclei, _ = Masks.from_labels(label_components(sample.nuclei))
            annotations += _annotations(nuclei, len(annotations) + 1, image_id, 2)
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
