"""Readers and writers of napari_cervix.io, on tiny files written here in each real format."""

from __future__ import annotations

import json

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import scipy.io
import tifffile
from scipy import ndimage as ndi

from napari_cervix.io import (
    CellSample,
    load_dataset,
    nucleus_gt_variant,
    parse_spec,
    read_cell_npz,
    read_class_folders,
    read_coco,
    read_cyto_ground_truth,
    read_edf_nuclei,
    read_image,
    read_isbi2014,
    read_isbi2015,
    read_isbi2015_mat,
    read_mask_pairs,
    read_nucleus_gt,
    split_key,
    split_samples,
    write_coco,
)


def disk(shape, center, radius) -> np.ndarray:
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def synthetic_cells(shape=(40, 48), n_cells=3, seed=0):
    """Gray image, overlapping whole-cell disks and a small nucleus disk in each cell."""
    rng = np.random.default_rng(seed)
    centers = [(int(rng.integers(12, shape[0] - 12)), int(rng.integers(12, shape[1] - 12))) for _ in range(n_cells)]
    cells = np.stack([disk(shape, c, 10) for c in centers])
    nuclei = np.any([disk(shape, c, 3) for c in centers], axis=0)
    image = (200 - 60 * cells.sum(0) - 80 * nuclei).clip(0, 255).astype(np.uint8)
    return image, cells, nuclei


def write_isbi2014(folder, n_cells=(2, 1, 3), shape=(40, 48)):
    """isbi_train_GT.mat in the challenge's nested cell-array layout + images/{i+1}.tif → truth."""
    (folder / "images").mkdir(parents=True)
    cytoplasm = np.empty((len(n_cells), 1), object)
    nuclei = np.empty((len(n_cells), 1), object)
    truth = []
    for i, n in enumerate(n_cells):
        image, cells, nucleus_union = synthetic_cells(shape, n, seed=i)
        per_cell = np.empty((n, 1), object)
        for k in range(n):
            per_cell[k, 0] = cells[k].astype(np.uint8)
        cytoplasm[i, 0], nuclei[i, 0] = per_cell, nucleus_union.astype(np.uint8)
        tifffile.imwrite(folder / "images" / f"{i + 1}.tif", image)
        truth.append((image, cells, nucleus_union))
    scipy.io.savemat(
        folder / "isbi_train_GT.mat",
        {
            "train_Cytoplasm": cytoplasm,
            "train_Nuclei": nuclei,
            "CellNum": np.array(n_cells, np.uint8)[:, None],
        },
    )
    return truth


def write_v73_cells(mat_path, stacks):
    """MATLAB v7.3-style CytoGroundTruth: 1×E cell array of 1×N cell arrays of transposed masks."""
    with h5py.File(mat_path, "w") as f:
        refs = f.create_group("#refs#")
        top = f.create_dataset("CytoGroundTruth", (1, len(stacks)), dtype=h5py.ref_dtype)
        top.attrs["MATLAB_class"] = np.bytes_(b"cell")
        for e, stack in enumerate(stacks):
            if len(stack) == 0:
                empty = refs.create_dataset(f"empty{e}", data=np.zeros(2, np.uint64))
                empty.attrs["MATLAB_empty"] = np.uint8(1)
                top[0, e] = empty.ref
                continue
            entry = refs.create_dataset(f"entry{e}", (1, len(stack)), dtype=h5py.ref_dtype)
            entry.attrs["MATLAB_class"] = np.bytes_(b"cell")
            for k, mask in enumerate(stack):
                ds = refs.create_dataset(f"m{e}_{k}", data=mask.T.astype(np.uint8))
                ds.attrs["MATLAB_class"] = np.bytes_(b"logical")
                entry[0, k] = ds.ref
            top[0, e] = entry.ref


# --- read_image -----------------------------------------------------------------------------------


def test_read_image_keeps_dtype_and_drops_alpha(tmp_path):
    gray16 = (np.arange(12 * 10, dtype=np.uint16) * 500).reshape(12, 10)
    tifffile.imwrite(tmp_path / "a.tif", gray16)
    assert read_image(tmp_path / "a.tif").dtype == np.uint16
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), gray16)

    rgba = np.random.default_rng(0).integers(0, 255, (8, 9, 4), dtype=np.uint8)
    iio.imwrite(tmp_path / "b.png", rgba)
    out = read_image(tmp_path / "b.png")
    assert out.shape == (8, 9, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgba[..., :3])

    iio.imwrite(tmp_path / "c.jpg", rgba[..., :3])
    assert read_image(tmp_path / "c.jpg").shape == (8, 9, 3)


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_image(tmp_path / "nothere.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="broken.png"):
        read_image(tmp_path / "broken.png")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="stack.tif"):
        read_image(tmp_path / "stack.tif")


# --- ISBI 2014 ------------------------------------------------------------------------------------


def test_read_isbi2014_nested_cell_arrays(tmp_path):
    truth = write_isbi2014(tmp_path)
    for source in (tmp_path, tmp_path / "isbi_train_GT.mat"):
        samples = read_isbi2014(source)
        assert [s.name for s in samples] == ["1", "2", "3"]
        for sample, (image, cells, nuclei) in zip(samples, truth):
            np.testing.assert_array_equal(sample.image, image)
            assert len(sample.cells) == len(cells) and sample.cells.shape == cells.shape[1:]
            np.testing.assert_array_equal(sample.cells.to_stack(), cells)
            np.testing.assert_array_equal(sample.nuclei, nuclei)
    assert (samples[0].semantic_target() == 2).sum() == truth[0][2].sum()


def test_read_isbi2014_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="isbi_train_GT.mat"):
        read_isbi2014(tmp_path)
    write_isbi2014(tmp_path)
    (tmp_path / "images" / "2.tif").unlink()
    with pytest.raises(FileNotFoundError, match="2.tif"):
        read_isbi2014(tmp_path)
    scipy.io.savemat(tmp_path / "other.mat", {"x": np.ones(3)})
    with pytest.raises(ValueError, match="other.mat.*train_Cytoplasm"):
        read_isbi2014(tmp_path / "other.mat")
    (tmp_path / "corrupt.mat").write_bytes(b"MATLAB 5.0 garbage" * 3)
    with pytest.raises(ValueError, match="corrupt.mat"):
        read_isbi2014(tmp_path / "corrupt.mat")


# --- ISBI 2015 ------------------------------------------------------------------------------------


def test_read_cyto_ground_truth_follows_references_and_transposes(tmp_path):
    shape = (30, 44)  # not square, so a missing transpose cannot go unnoticed
    stacks = [
        synthetic_cells(shape, 3, seed=1)[1],
        np.zeros((0, *shape), bool),
        synthetic_cells(shape, 2, 2)[1],
    ]
    write_v73_cells(tmp_path / "CytoGroundTruth.mat", stacks)
    got = read_cyto_ground_truth(tmp_path / "CytoGroundTruth.mat")
    assert len(got) == 3 and len(got[1]) == 0
    np.testing.assert_array_equal(got[0].to_stack(), stacks[0])
    np.testing.assert_array_equal(got[2].to_stack(), stacks[2])
    only_last = read_cyto_ground_truth(tmp_path / "CytoGroundTruth.mat", entries=[2])
    np.testing.assert_array_equal(only_last[0].to_stack(), stacks[2])
    with pytest.raises(ValueError, match="entry 5"):
        read_cyto_ground_truth(tmp_path / "CytoGroundTruth.mat", entries=[5])


def test_read_isbi2015_mat_with_mapping_images_and_nucleus_gt(tmp_path):
    shape = (30, 44)
    (image_a, cells_a, nuclei_a), (_, cells_skip, _), (image_b, cells_b, _) = (
        synthetic_cells(shape, n, seed=n) for n in (3, 2, 4)
    )
    write_v73_cells(tmp_path / "CytoGroundTruth.mat", [cells_a, cells_skip, cells_b])
    (tmp_path / "frames_to_edf.json").write_text(
        json.dumps(
            [
                {"index_in_mat": 0, "isbi2015_frame": "frame004", "isbi2014_edf": "EDF004"},
                {"index_in_mat": 1, "isbi2015_frame": "frame007", "isbi2014_edf": None},
                {"index_in_mat": 2, "isbi2015_frame": "frame016", "isbi2014_edf": "EDF009"},
            ]
        )
    )
    iio.imwrite(tmp_path / "EDF004.png", image_a)
    iio.imwrite(tmp_path / "EDF004_GT.png", nuclei_a.astype(np.uint16) * 32896)
    iio.imwrite(tmp_path / "EDF009.png", image_b)

    samples = read_isbi2015_mat(tmp_path / "CytoGroundTruth.mat")
    assert [s.name for s in samples] == ["EDF004", "EDF009"]  # frame007 has no image: skipped
    np.testing.assert_array_equal(samples[0].cells.to_stack(), cells_a)
    np.testing.assert_array_equal(samples[0].nuclei, nuclei_a)
    np.testing.assert_array_equal(samples[1].cells.to_stack(), cells_b)
    assert samples[1].nuclei is None and samples[1].meta["frame"] == "frame016"

    (tmp_path / "EDF009.png").unlink()
    with pytest.raises(FileNotFoundError, match="EDF009"):
        read_isbi2015_mat(tmp_path / "CytoGroundTruth.mat")
    (tmp_path / "frames_to_edf.json").unlink()
    with pytest.raises(FileNotFoundError, match="frames_to_edf.json"):
        read_isbi2015_mat(tmp_path / "CytoGroundTruth.mat")


def test_read_cell_npz_and_isbi2015_folder(tmp_path):
    image, cells, nuclei = synthetic_cells((32, 32), 3)
    np.savez_compressed(tmp_path / "EDF004.npz", image=image, cyto=cells, nuclei=nuclei)
    sample = read_cell_npz(tmp_path / "EDF004.npz")
    assert sample.name == "EDF004"
    np.testing.assert_array_equal(sample.cells.to_stack(), cells)
    np.testing.assert_array_equal(sample.nuclei, nuclei)
    assert [s.name for s in read_isbi2015(tmp_path)] == ["EDF004"]

    np.savez(tmp_path / "bad.npz", picture=image)
    with pytest.raises(ValueError, match="bad.npz.*'cyto'"):
        read_cell_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "wrong_shape.npz", image=image, cyto=cells[:, :10])
    with pytest.raises(ValueError, match="wrong_shape.npz"):
        read_cell_npz(tmp_path / "wrong_shape.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="corrupt.npz"):
        read_cell_npz(tmp_path / "corrupt.npz")


# --- EDF nucleus ground truth ---------------------------------------------------------------------


def test_nucleus_gt_filled_and_outline_variants_detected_from_pixels(tmp_path):
    shape = (40, 40)
    truth = disk(shape, (12, 12), 6) | disk(shape, (28, 26), 5)
    image = np.full(shape, 180, np.uint8)
    filled = truth.astype(np.uint16) * 32896
    # Outline GT: one gray level per nucleus on its 1-pixel boundary, as in EDF000-003.
    outline = np.zeros(shape, np.uint8)
    components, count = ndi.label(truth)
    for k in range(1, count + 1):
        blob = components == k
        outline[blob & ~ndi.binary_erosion(blob)] = 81 + 10 * k
    # Names deliberately swapped: the variant must come from the data.
    for name, gt in (("EDF000", filled), ("EDF005", outline)):
        iio.imwrite(tmp_path / f"{name}.png", image)
        iio.imwrite(tmp_path / f"{name}_GT.png", gt)
    assert nucleus_gt_variant(outline > 0) == "outline" and nucleus_gt_variant(truth) == "filled"
    np.testing.assert_array_equal(read_nucleus_gt(tmp_path / "EDF005_GT.png"), truth)

    samples = read_edf_nuclei(tmp_path)
    assert [(s.name, s.meta["gt_variant"]) for s in samples] == [
        ("EDF000", "filled"),
        ("EDF005", "outline"),
    ]
    for sample in samples:
        np.testing.assert_array_equal(sample.nuclei, truth)
        assert sample.cells is None


def test_edf_nuclei_missing_image(tmp_path):
    iio.imwrite(tmp_path / "EDF001_GT.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(FileNotFoundError, match="EDF001"):
        read_edf_nuclei(tmp_path)


# --- COCO -----------------------------------------------------------------------------------------


def test_isbi_to_coco_round_trip_is_exact_and_loads_in_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    write_isbi2014(tmp_path / "isbi")
    original = read_isbi2014(tmp_path / "isbi")
    json_path = write_coco(original, tmp_path / "export" / "coco.json")

    coco = COCO(str(json_path))
    assert len(coco.getImgIds()) == 3
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"cell", "nucleus"}
    first_cells = coco.loadAnns(coco.getAnnIds(imgIds=[1], catIds=[1]))
    np.testing.assert_array_equal(coco.annToMask(first_cells[0]).astype(bool), original[0].cells.cells.mask(0))
    n_components = ndi.label(original[2].nuclei, structure=np.ones((3, 3)))[1]
    assert len(coco.getAnnIds(imgIds=[3], catIds=[2])) == n_components

    again = read_coco(json_path)
    assert [s.name for s in again] == [s.name for s in original]
    for a, b in zip(original, again):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.cells.to_stack(), b.cells.to_stack())
        np.testing.assert_array_equal(a.nuclei, b.nuclei)


def test_read_coco_polygons_uncompressed_rle_and_extra_categories(tmp_path):
    from pycocotools import mask as mask_utils

    (tmp_path / "imgs").mkdir()
    iio.imwrite(tmp_path / "imgs" / "a.png", np.zeros((20, 30), np.uint8))
    square = np.zeros((20, 30), bool)
    square[5:10, 5:15] = True
    compressed = mask_utils.encode(np.asfortranarray(square.astype(np.uint8)))
    uncompressed = _uncompressed_rle(square)
    document = {
        "images": [{"id": 7, "file_name": "imgs/a.png", "height": 20, "width": 30, "label": "normal"}],
        "categories": [
            {"id": 3, "name": "Cell"},
            {"id": 4, "name": "nucleus"},
            {"id": 9, "name": "debris"},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 3,
                "segmentation": [[20, 2, 28, 2, 28, 12, 20, 12]],
            },
            {"id": 2, "image_id": 7, "category_id": 3, "segmentation": uncompressed},
            {
                "id": 3,
                "image_id": 7,
                "category_id": 4,
                "segmentation": {"size": [20, 30], "counts": compressed["counts"].decode()},
            },
            {"id": 4, "image_id": 7, "category_id": 9, "segmentation": [[0, 0, 5, 0, 5, 5]]},
        ],
    }
    (tmp_path / "c.json").write_text(json.dumps(document))
    (sample,) = read_coco(tmp_path / "c.json")
    assert sample.name == "a" and sample.label == "normal" and len(sample.cells) == 2
    cells = sample.cells.to_stack()
    assert cells.shape == (2, 20, 30) and cells[0][5, 24] and not cells[0][15, 24]
    np.testing.assert_array_equal(cells[1], square)
    np.testing.assert_array_equal(sample.nuclei, square)


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths of the column-major flattening, starting with zeros."""
    flat = np.asarray(mask, np.uint8).ravel(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0] + runs
    return {"size": list(mask.shape), "counts": runs}


def test_coco_errors_and_label_round_trip(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_coco(tmp_path / "missing.json")
    (tmp_path / "notcoco.json").write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="notcoco.json"):
        read_coco(tmp_path / "notcoco.json")
    document = {
        "images": [{"id": 1, "file_name": "gone.png", "height": 4, "width": 4}],
        "annotations": [],
        "categories": [{"id": 1, "name": "cell"}],
    }
    (tmp_path / "gone.json").write_text(json.dumps(document))
    with pytest.raises(FileNotFoundError, match="gone.png"):
        read_coco(tmp_path / "gone.json")
    document["images"] = [{"id": 1, "height": 4, "width": 4}]
    (tmp_path / "nofile.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="nofile.json.*file_name"):
        read_coco(tmp_path / "nofile.json")

    rgb = np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    samples = [
        CellSample(image=rgb, label="carcinoma_in_situ", name="x1"),
        CellSample(image=rgb[..., 0], label="normal_columnar", name="x2"),
    ]
    back = read_coco(write_coco(samples, tmp_path / "out" / "herlev.json", images_dir=tmp_path / "tifs"))
    assert [(s.name, s.label, s.image.shape) for s in back] == [
        ("x1", "carcinoma_in_situ", (16, 16, 3)),
        ("x2", "normal_columnar", (16, 16)),
    ]
    np.testing.assert_array_equal(back[0].image, rgb)
    assert len(back[0].cells) == 0 and back[0].cells.shape == (16, 16) and not back[0].nuclei.any()
    with pytest.raises(ValueError, match="x1"):
        write_coco(samples + [CellSample(image=rgb, name="x1")], tmp_path / "dup.json")


# --- folders --------------------------------------------------------------------------------------


def test_class_folders_and_mask_pairs(tmp_path):
    rng = np.random.default_rng(2)
    for label, names in (("normal_columnar", ["a1", "a2"]), ("carcinoma_in_situ", ["b1"])):
        (tmp_path / "herlev" / label).mkdir(parents=True)
        for name in names:
            iio.imwrite(
                tmp_path / "herlev" / label / f"{name}.jpg",
                rng.integers(0, 255, (24, 24, 3), dtype=np.uint8),
            )
    (tmp_path / "herlev" / "normal_columnar" / "notes.txt").write_text("ignored")
    samples = read_class_folders(tmp_path / "herlev")
    assert [(s.label, s.name, s.image.shape) for s in samples] == [
        ("carcinoma_in_situ", "b1", (24, 24, 3)),
        ("normal_columnar", "a1", (24, 24, 3)),
        ("normal_columnar", "a2", (24, 24, 3)),
    ]

    pairs = tmp_path / "pairs"
    (pairs / "images").mkdir(parents=True)
    (pairs / "masks").mkdir()
    nucleus = disk((64, 64), (30, 34), 12)
    iio.imwrite(pairs / "images" / "c1.jpg", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    iio.imwrite(
        pairs / "masks" / "c1.jpg",
        np.repeat(nucleus[..., None] * 255, 3, -1).astype(np.uint8),
        quality=70,
    )  # JPEG blur around the edge, as in herlev_nuclei_severe
    (sample,) = read_mask_pairs(pairs)
    assert sample.nuclei.dtype == bool
    assert (sample.nuclei != nucleus).sum() < 0.02 * nucleus.sum()
    iio.imwrite(pairs / "images" / "c2.jpg", np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="c2"):
        read_mask_pairs(pairs)


# --- load_dataset ---------------------------------------------------------------------------------


def test_load_dataset_specs_and_guessing(tmp_path):
    write_isbi2014(tmp_path / "isbi", n_cells=(2, 2))
    assert len(load_dataset(f"isbi2014:{tmp_path / 'isbi'}")) == 2
    assert parse_spec(tmp_path / "isbi")[0] == "isbi2014"
    assert parse_spec(tmp_path / "isbi" / "isbi_train_GT.mat")[0] == "isbi2014"

    write_coco(load_dataset(tmp_path / "isbi"), tmp_path / "isbi" / "coco.json")
    assert parse_spec(tmp_path / "isbi")[0] == "isbi2014"  # the native GT wins over its COCO export
    assert parse_spec(f"coco:{tmp_path / 'isbi'}")[1].name == "coco.json"
    coco_samples = load_dataset(f"coco:{tmp_path / 'isbi' / 'coco.json'}")
    assert [s.meta["spec"].split(":")[0] for s in coco_samples] == ["coco", "coco"]

    (tmp_path / "v73").mkdir()
    write_v73_cells(tmp_path / "v73" / "CytoGroundTruth.mat", [synthetic_cells((32, 32), 1)[1]])
    assert parse_spec(tmp_path / "v73" / "CytoGroundTruth.mat")[0] == "isbi2015"
    assert parse_spec(tmp_path / "v73")[0] == "isbi2015"

    (tmp_path / "herlev" / "severe").mkdir(parents=True)
    iio.imwrite(tmp_path / "herlev" / "severe" / "x.png", np.zeros((8, 8, 3), np.uint8))
    assert load_dataset(tmp_path / "herlev")[0].label == "severe"
    assert load_dataset(f"herlev:{tmp_path / 'herlev'}")[0].meta["spec"].startswith("herlev:")


def test_load_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset kind 'cityscapes'"):
        load_dataset(f"cityscapes:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dataset(f"isbi2014:{tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no known dataset layout"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="notes.txt"):
        load_dataset(tmp_path / "notes.txt")
    both = tmp_path / "both"
    write_isbi2014(both, n_cells=(1,))
    np.savez(both / "EDF004.npz", image=np.zeros((4, 4)), cyto=np.zeros((1, 4, 4), bool))
    with pytest.raises(ValueError, match="several dataset layouts"):
        load_dataset(both)
    (tmp_path / "corrupt.json").write_text("{ not json")
    with pytest.raises(ValueError, match="corrupt.json"):
        load_dataset(f"coco:{tmp_path / 'corrupt.json'}")


# --- split_samples --------------------------------------------------------------------------------


def _named(names):
    return [CellSample(image=np.zeros((2, 2), np.uint8), name=n) for n in names]


def test_split_is_deterministic_stable_and_keeps_augmented_copies_together():
    names = [f"cell{i:04d}" for i in range(1000)]
    train, val = split_samples(_named(names), val_fraction=0.2, seed=0)
    assert len(train) + len(val) == 1000 and 150 < len(val) < 250
    again_train, again_val = split_samples(_named(names), 0.2, 0)
    assert [s.name for s in again_val] == [s.name for s in val]

    val_names = {s.name for s in val}
    bigger_train, bigger_val = split_samples(_named(names + [f"new{i}" for i in range(300)]), 0.2, 0)
    assert {s.name for s in bigger_val if s.name.startswith("cell")} == val_names

    other_seed = {s.name for s in split_samples(_named(names), 0.2, seed=1)[1]}
    assert other_seed != val_names

    assert split_key("mirrored_flipped_149-2") == "149-2"
    family = ["149-2", "flipped_149-2", "mirrored_149-2"] + names[:50]
    _, family_val = split_samples(_named(family), 0.2, 0)
    family_in_val = {s.name for s in family_val} & set(family[:3])
    assert family_in_val in (set(), set(family[:3]))


def test_split_small_sets_and_bad_fraction():
    train, val = split_samples(_named(["a", "b", "c"]), val_fraction=0.05)
    assert len(val) >= 1 and len(train) + len(val) == 3
    train, val = split_samples(_named(["a", "b"]), val_fraction=0.0)
    assert [s.name for s in train] == ["a", "b"] and val == []
    with pytest.raises(ValueError, match="val_fraction"):
        split_samples(_named(["a"]), val_fraction=1.5)
