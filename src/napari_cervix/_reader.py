"""npe2 reader: per-cell ``.npz``, COCO ``.json`` and ISBI ``.mat`` files → layer-data tuples.

Returns plain ``(data, kwargs, layer_type)`` tuples, so nothing here imports napari. Per file: the
image, the nuclei as Labels (one id per connected nucleus), the cells as Labels (each pixel → the
first cell covering it) and the cell outlines as Shapes with a ``cell_id`` feature, so overlapping
cells stay visible. Same-sized images of one file are stacked into one layer each (plane = image,
in file order).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

_EIGHT_CONNECTED = np.ones((3, 3), bool)


def _file_kind(path: Path) -> str | None:
    """Dataset kind of a file this reader handles, judged from its content; None otherwise."""
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return "isbi2015" if {"image", "cyto"} <= set(data.files) else None
        if suffix == ".json":
            document = json.loads(path.read_text())
            is_coco = isinstance(document, dict) and {"images", "annotations", "categories"} <= document.keys()
            return "coco" if is_coco else None
        if suffix == ".mat":
            import h5py
            import scipy.io

            if h5py.is_hdf5(path):
                with h5py.File(path, "r") as h5file:
                    return "isbi2015" if "CytoGroundTruth" in h5file else None
            names = {name for name, _, _ in scipy.io.whosmat(path)}
            return "isbi2014" if {"train_Cytoplasm", "train_Nuclei"} <= names else None
    except Exception:  # a file we cannot parse is not ours: napari tries other readers
        return None
    return None


def get_reader(path):
    """npe2 ``get_reader`` hook: a reader function for our files, or None."""
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    kinds = [_file_kind(p) for p in paths]
    if not paths or None in kinds:
        return None

    def read_cervix(_path) -> list[tuple]:  # napari passes the same path(s) again
        from .io import load_dataset

        layers = []
        for file_path, kind in zip(paths, kinds):
            layers += samples_to_layers(load_dataset(f"{kind}:{file_path}"), title=file_path.stem)
        return layers

    return read_cervix


def first_cell_labels(cells: np.ndarray) -> np.ndarray:
    """H×W int32: 1 + index of the first cell on each pixel (overlaps go to the first), else 0."""
    cells = np.asarray(cells, bool)
    if len(cells) == 0:
        return np.zeros(cells.shape[1:], np.int32)
    return np.where(cells.any(axis=0), cells.argmax(axis=0) + 1, 0).astype(np.int32)


def cell_outlines(mask: np.ndarray, tolerance: float = 0.5) -> list[np.ndarray]:
    """Closed (row, col) polygons tracing a mask's boundaries (outer ones and holes), simplified."""
    from skimage.measure import approximate_polygon, find_contours

    polygons = []
    for box in ndi.find_objects(np.asarray(mask, np.uint8)):
        if box is None:
            continue
        crop = np.pad(np.asarray(mask[box], np.uint8), 1)  # padding closes contours touching the border
        offset = np.array([box[0].start - 1, box[1].start - 1], float)
        for contour in find_contours(crop, 0.5):
            polygon = approximate_polygon(contour, tolerance)
            if len(polygon) >= 3:
                polygons.append(polygon + offset)
    return polygons


def _stackable(samples) -> bool:
    return len({(s.image.shape, s.image.dtype) for s in samples}) == 1


def samples_to_layers(samples, title: str = "cells") -> list[tuple]:
    """Layer-data tuples: one stacked set of layers when the images share shape and dtype,
    else one set per sample (named after the sample)."""
    samples = list(samples)
    if not samples:
        return []
    if len(samples) > 1 and _stackable(samples):
        return _group_layers(samples, title, stacked=True)
    return [layer for s in samples for layer in _group_layers([s], s.name or title, stacked=False)]


def _group_layers(samples, title: str, stacked: bool) -> list[tuple]:
    def stack(planes):
        return np.stack(planes) if stacked else planes[0]

    shape = samples[0].shape
    metadata = {"names": [s.name for s in samples], "sources": [s.source for s in samples]}
    first = samples[0].image
    layers = [
        (
            stack([s.image for s in samples]),
            {"name": title, "rgb": first.ndim == 3, "metadata": metadata},
            "image",
        )
    ]
    if any(s.nuclei is not None for s in samples):
        nuclei = [
            ndi.label(s.nuclei, structure=_EIGHT_CONNECTED)[0].astype(np.int32)
            if s.nuclei is not None
            else np.zeros(shape, np.int32)
            for s in samples
        ]
        layers.append((stack(nuclei), {"name": f"{title} nuclei", "metadata": metadata}, "labels"))
    if any(s.cells is not None for s in samples):
        cells = [first_cell_labels(s.cells) if s.cells is not None else np.zeros(shape, np.int32) for s in samples]
        layers.append((stack(cells), {"name": f"{title} cells", "metadata": metadata}, "labels"))
        polygons, cell_ids, image_names = [], [], []
        for plane, sample in enumerate(samples):
            for k, mask in enumerate([] if sample.cells is None else sample.cells):
                for polygon in cell_outlines(mask):
                    polygons.append(np.column_stack([np.full(len(polygon), plane), polygon]) if stacked else polygon)
                    cell_ids.append(k + 1)
                    image_names.append(sample.name)
        if polygons:
            layers.append(
                (
                    polygons,
                    {
                        "name": f"{title} cell outlines",
                        "shape_type": "polygon",
                        "features": {
                            "cell_id": np.array(cell_ids, np.int32),
                            "image": np.array(image_names),
                        },
                        "face_color": "transparent",
                        "edge_color": "cyan",
                        "edge_width": 1,
                        "metadata": metadata,
                    },
                    "shapes",
                )
            )
    return layers
