"""npe2 reader: per-cell ``.npz``, COCO ``.json`` and ISBI ``.mat`` files → layer-data tuples.

Returns plain ``(data, kwargs, layer_type)`` tuples, so nothing here imports napari. Per file: the
image, and its ground truth as the same linked layers a prediction gets
(:func:`napari_cervix.instances.layers.layer_tuples`: cell Labels with the smallest cell on top, nuclei
Labels carrying their cell's id, cell outlines as Shapes). Same-sized images of one file are stacked into
one layer each (plane = image, in file order).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .instances.layers import layer_tuples


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
    metadata = {"names": [s.name for s in samples], "sources": [s.source for s in samples]}
    images = [s.image for s in samples]
    layers = [
        (
            np.stack(images) if stacked else images[0],
            {"name": title, "rgb": images[0].ndim == 3, "metadata": metadata},
            "image",
        )
    ]
    with_cells = any(s.cells is not None for s in samples)
    with_nuclei = any(s.nuclei is not None for s in samples)
    if with_cells or with_nuclei:
        cell_sets = [s.cell_set() for s in samples]
        ground_truth = layer_tuples(
            cell_sets if stacked else cell_sets[0], title, with_cells=with_cells, with_nuclei=with_nuclei
        )
        for _, kwargs, layer_type in ground_truth:
            kwargs["metadata"] = {**kwargs["metadata"], **metadata}
            if layer_type == "shapes" and stacked:  # which image of the file each outline belongs to
                kwargs["features"]["image"] = [metadata["names"][p] for p in kwargs["features"]["plane"]]
        layers += ground_truth
    return layers
