"""npe2 reader/writer hooks, called directly (no viewer)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.io
import tifffile
from skimage.draw import polygon2mask

from napari_cervix._reader import get_reader, samples_to_layers
from napari_cervix._writer import write_labels
from napari_cervix.io import CellSample, write_coco


def _disk(shape, center, radius):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def _two_overlapping_cells(shape=(40, 50)):
    cells = np.stack([_disk(shape, (20, 18), 10), _disk(shape, (20, 30), 8)])
    nuclei = _disk(shape, (20, 15), 3) | _disk(shape, (20, 34), 3)
    image = (200 - 50 * cells.sum(0)).astype(np.uint8)
    return image, cells, nuclei


def _layers_by_type(layers):
    return {
        layer_type: [(data, kwargs) for data, kwargs, t in layers if t == layer_type]
        for layer_type in ("image", "labels", "shapes")
    }


def test_npz_gives_image_nuclei_cells_and_outline_layers(tmp_path):
    image, cells, nuclei = _two_overlapping_cells()
    path = tmp_path / "EDF004.npz"
    np.savez_compressed(path, image=image, cyto=cells, nuclei=nuclei)
    reader = get_reader(str(path))
    assert callable(reader)
    layers = reader(str(path))
    assert [kwargs["name"] for _, kwargs, _ in layers] == [
        "EDF004",
        "EDF004 cell labels",
        "EDF004 nuclei",
        "EDF004 cells",
    ]
    assert [t for _, _, t in layers] == ["image", "labels", "labels", "shapes"]
    by_type = _layers_by_type(layers)
    np.testing.assert_array_equal(by_type["image"][0][0], image)

    (cell_labels, _), (nucleus_labels, _) = by_type["labels"]
    # nuclei carry the id of the cell they lie in: the same ids as the cells, as for a prediction
    assert nucleus_labels[20, 15] == 1 and nucleus_labels[20, 34] == 2
    np.testing.assert_array_equal(nucleus_labels > 0, nuclei)
    assert cell_labels[20, 24] == 2  # overlap pixel: the smaller cell wins, the one rule for every layer
    assert cell_labels[20, 10] == 1 and cell_labels[0, 0] == 0
    np.testing.assert_array_equal(cell_labels > 0, cells.any(0))

    polygons, kwargs = by_type["shapes"][0]
    assert kwargs["shape_type"] == "polygon" and list(kwargs["features"]["cell_id"]) == [1, 2]
    for polygon, cell in zip(polygons, cells):  # each outline encloses its own cell, overlap included
        filled = polygon2mask(cell.shape, polygon)
        assert (filled & cell).sum() / (filled | cell).sum() > 0.9


def test_isbi2014_mat_stacks_same_sized_images(tmp_path):
    (tmp_path / "images").mkdir()
    cytoplasm, nuclei = np.empty((2, 1), object), np.empty((2, 1), object)
    for i in range(2):
        image, cells, nucleus = _two_overlapping_cells()
        per_cell = np.empty((2, 1), object)
        per_cell[0, 0], per_cell[1, 0] = cells[0].astype(np.uint8), cells[1].astype(np.uint8)
        cytoplasm[i, 0], nuclei[i, 0] = per_cell, nucleus.astype(np.uint8)
        tifffile.imwrite(tmp_path / "images" / f"{i + 1}.tif", image)
    mat = tmp_path / "isbi_train_GT.mat"
    scipy.io.savemat(mat, {"train_Cytoplasm": cytoplasm, "train_Nuclei": nuclei})

    layers = get_reader(str(mat))(str(mat))
    by_type = _layers_by_type(layers)
    assert by_type["image"][0][0].shape == (2, 40, 50)
    assert by_type["image"][0][1]["metadata"]["names"] == ["1", "2"]
    assert [d.shape for d, _ in by_type["labels"]] == [(2, 40, 50), (2, 40, 50)]
    polygons, kwargs = by_type["shapes"][0]
    assert len(polygons) == 4 and all(p.shape[1] == 3 for p in polygons)
    assert [int(p[0, 0]) for p in polygons] == [0, 0, 1, 1]  # plane index first
    assert list(kwargs["features"]["image"]) == ["1", "1", "2", "2"]
    assert list(kwargs["features"]["cell_id"]) == [1, 2, 1, 2]


def test_coco_json_and_mixed_sizes_give_one_layer_set_per_image(tmp_path):
    image, cells, nuclei = _two_overlapping_cells()
    samples = [
        CellSample(image=image, cells=cells, nuclei=nuclei, name="big"),
        CellSample(image=image[:30, :30], cells=cells[:, :30, :30], nuclei=nuclei[:30, :30], name="small"),
    ]
    json_path = write_coco(samples, tmp_path / "coco.json")
    layers = get_reader(str(json_path))(str(json_path))
    assert [kwargs["name"] for _, kwargs, _ in layers] == [
        "big",
        "big cell labels",
        "big nuclei",
        "big cells",
        "small",
        "small cell labels",
        "small nuclei",
        "small cells",
    ]


def test_reader_declines_other_files(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"images": 3}))
    np.savez(tmp_path / "weights.npz", w=np.zeros(3))
    scipy.io.savemat(tmp_path / "other.mat", {"x": np.ones(2)})
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "a.png").write_bytes(b"")
    for name in ("config.json", "weights.npz", "other.mat", "broken.json", "a.png", "missing.npz"):
        assert get_reader(str(tmp_path / name)) is None, name
    image, cells, nuclei = _two_overlapping_cells()
    np.savez(tmp_path / "cells.npz", image=image, cyto=cells, nuclei=nuclei)
    assert get_reader([str(tmp_path / "cells.npz"), str(tmp_path / "weights.npz")]) is None
    assert len(get_reader([str(tmp_path / "cells.npz")] * 2)(None)) == 8


def test_layer_tuples_build_napari_layers(tmp_path):
    layers_module = pytest.importorskip("napari.layers")
    image, cells, nuclei = _two_overlapping_cells()
    sample = CellSample(image=image, cells=cells, nuclei=nuclei, name="s")
    for stacked in ([sample], [sample, sample]):
        for data, kwargs, layer_type in samples_to_layers(stacked):
            layer = getattr(layers_module, layer_type.capitalize())(data, **kwargs)
            assert layer.ndim == len(stacked) + 1
            if layer_type == "shapes":
                assert list(layer.features["cell_id"]) == [1, 2] * len(stacked)


def test_nuclei_only_files_give_nucleus_labels_without_cell_layers():
    image, _, nuclei = _two_overlapping_cells()
    layers = samples_to_layers([CellSample(image=image, nuclei=nuclei, name="edf")])
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["edf", "edf nuclei"]
    assert set(np.unique(layers[1][0])) == {0, 1, 2}  # no cells: each nucleus gets its own id


def test_write_labels_round_trip_compact_dtype_and_atomic(tmp_path):
    labels = np.zeros((20, 30), np.int64)
    labels[2:8, 3:9], labels[10:15, 10:25] = 1, 300
    out = write_labels(str(tmp_path / "cells.tif"), labels, {"name": "cells"})
    assert out == [str(tmp_path / "cells.tif")]
    back = tifffile.imread(out[0])
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)

    stacked = np.stack([labels, labels * 0]).astype(np.int32)
    (again,) = write_labels(str(tmp_path / "cells.tif"), stacked, {})  # overwrites in place
    np.testing.assert_array_equal(tifffile.imread(again), stacked)
    assert sorted(os.listdir(tmp_path)) == ["cells.tif"]  # no temporary file left behind

    (no_suffix,) = write_labels(str(tmp_path / "nuclei"), labels > 0, {})
    assert no_suffix.endswith("nuclei.tif") and tifffile.imread(no_suffix).dtype == np.uint8
    with pytest.raises(ValueError, match="integers"):
        write_labels(str(tmp_path / "f.tif"), labels.astype(float), {})
    assert not (tmp_path / "f.tif").exists()
