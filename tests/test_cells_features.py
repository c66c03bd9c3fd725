"""measure_cells: definitions against scikit-image, the nucleus rules, overlapping cells, bad input."""

import numpy as np
import pandas as pd
import pytest
from skimage.draw import disk, ellipse
from skimage.measure import regionprops_table

from napari_cervix.cells.features import (
    LBP_UNIFORM_BINS,
    UNIFORM_LUT,
    feature_columns,
    lbp_codes,
    lbp_histogram,
    measure_cells,
)
from napari_cervix.imaging import ImageError


def field(seed=0, size=200, n=25):
    """Overlapping random ellipses (later ones occlude), each with a small central nucleus."""
    rng = np.random.default_rng(seed)
    cells = np.zeros((size, size), np.int32)
    nuclei = np.zeros((size, size), bool)
    for label in range(1, n + 1):
        cy, cx = rng.integers(0, size, 2)
        rr, cc = ellipse(
            cy, cx, rng.integers(4, 22), rng.integers(4, 22), shape=cells.shape, rotation=rng.uniform(0, np.pi)
        )
        cells[rr, cc] = label
        rr, cc = disk((cy, cx), 3, shape=cells.shape)
        nuclei[rr, cc] = True
    image = rng.random((size, size)).astype(np.float32)
    return image, cells, nuclei


def test_shapes_and_intensities_match_regionprops():
    image, cells, nuclei = field()
    table = measure_cells(image, cells, nuclei)
    ref = pd.DataFrame(
        regionprops_table(
            cells,
            image,
            properties=(
                "label",
                "area",
                "perimeter",
                "eccentricity",
                "axis_major_length",
                "axis_minor_length",
                "solidity",
                "intensity_mean",
                "intensity_min",
                "intensity_max",
                "centroid",
                "bbox",
            ),
        )
    )
    assert list(table["label"]) == list(ref["label"])
    pairs = {
        "cell_area": "area",
        "cell_perimeter": "perimeter",
        "cell_eccentricity": "eccentricity",
        "cell_major_axis": "axis_major_length",
        "cell_minor_axis": "axis_minor_length",
        "cell_intensity_mean": "intensity_mean",
        "cell_intensity_min": "intensity_min",
        "cell_intensity_max": "intensity_max",
        "centroid_y": "centroid-0",
        "centroid_x": "centroid-1",
        "bbox_y0": "bbox-0",
        "bbox_x0": "bbox-1",
        "bbox_y1": "bbox-2",
        "bbox_x1": "bbox-3",
    }
    for ours, theirs in pairs.items():
        np.testing.assert_allclose(
            table[ours].to_numpy(float), ref[theirs].to_numpy(float), rtol=1e-5, atol=1e-5, err_msg=ours
        )
    # Our solidity counts pixel centres in the hull of pixel centres: never above 1, never below skimage's.
    assert (table["cell_solidity"] <= 1 + 1e-9).all()
    assert (table["cell_solidity"] >= ref["solidity"] - 1e-9).all()
    assert list(table.columns) == feature_columns()


def test_nucleus_rules_none_one_and_two_nuclei():
    image = np.full((60, 90), 0.8, np.float32)
    cells = np.zeros((60, 90), np.int32)
    cells[5:35, 5:35] = 1  # one nucleus
    cells[5:35, 45:85] = 2  # two nuclei
    cells[40:55, 5:20] = 3  # no nucleus
    nuclei = np.zeros((60, 90), bool)
    nuclei[15:25, 15:25] = True
    nuclei[10:16, 50:56] = True
    nuclei[20:30, 70:80] = True
    image[nuclei] = 0.2
    table = measure_cells(image, cells, nuclei).set_index("label")

    assert table.loc[1, "nucleus_count"] == 1 and table.loc[1, "nucleus_area"] == 100
    assert table.loc[1, "nc_ratio"] == pytest.approx(100 / 900)
    assert table.loc[1, "cytoplasm_area"] == 800
    assert table.loc[1, "nucleus_intensity_mean"] == pytest.approx(0.2)
    assert table.loc[1, "cytoplasm_intensity_mean"] == pytest.approx(0.8)
    assert table.loc[1, "nucleus_cytoplasm_contrast"] == pytest.approx(0.6 / 1.0)

    assert table.loc[2, "nucleus_count"] == 2
    assert table.loc[2, "nucleus_area"] == 36 + 100  # union of both nuclei
    assert table.loc[2, "nucleus_solidity"] < 0.9  # two blobs: far from convex

    assert table.loc[3, "nucleus_count"] == 0 and table.loc[3, "nucleus_area"] == 0
    assert table.loc[3, "nc_ratio"] == 0
    assert np.isnan(table.loc[3, "nucleus_eccentricity"]) and np.isnan(table.loc[3, "nucleus_intensity_mean"])
    assert table.loc[3, "cytoplasm_area"] == table.loc[3, "cell_area"]

    # Nuclei given as labels: a nucleus label spanning two cells counts once in each.
    nucleus_labels = np.zeros((60, 90), np.int32)
    nucleus_labels[15:25, 15:25] = 7
    nucleus_labels[10:16, 50:56] = 8
    nucleus_labels[20:30, 70:80] = 9
    again = measure_cells(image, cells, nucleus_labels).set_index("label")
    assert list(again["nucleus_count"]) == [1, 2, 0]


def test_without_nuclei_every_cell_is_cytoplasm():
    image, cells, _ = field(1)
    table = measure_cells(image, cells)
    assert (table["nucleus_count"] == 0).all() and (table["nc_ratio"] == 0).all()
    np.testing.assert_allclose(table["cytoplasm_intensity_mean"], table["cell_intensity_mean"], rtol=1e-6)


def test_overlapping_masks_each_get_a_full_row():
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    a = np.zeros((64, 64), bool)
    b = np.zeros((64, 64), bool)
    a[10:40, 10:40] = True
    b[25:55, 25:55] = True  # overlaps a
    empty = np.zeros((64, 64), bool)
    stack = np.stack([a, b, empty])
    table = measure_cells(image, stack)
    assert list(table["label"]) == [1, 2]  # empty mask: nothing to measure, no row
    assert list(table["cell_area"]) == [900, 900]
    expected = measure_cells(image, a.astype(np.int32))
    np.testing.assert_allclose(table.iloc[0]["cell_intensity_mean"], expected.iloc[0]["cell_intensity_mean"])
    pd.testing.assert_frame_equal(measure_cells(image, [a, b, empty]), table)
    # the sparse cell set is the same cells: the same table, converted at the door or given as is
    from napari_cervix.cellset import CellSet

    pd.testing.assert_frame_equal(measure_cells(image, CellSet.from_stack(stack)), table)


def test_deeply_overlapping_cells_each_keep_every_pixel():
    # 11 cells on one spot need 11 label layers (more than one byte of layer bits per pixel)
    image = np.random.default_rng(1).random((40, 40)).astype(np.float32)
    stack = np.zeros((11, 40, 40), bool)
    for k in range(11):
        stack[k, 5 + k : 25 + k, 5:30] = True
    table = measure_cells(image, stack)
    assert list(table["label"]) == list(range(1, 12)) and (table["cell_area"] == 20 * 25).all()
    for k in range(11):
        assert table.loc[k, "cell_intensity_mean"] == pytest.approx(image[stack[k]].mean())


def test_diagonal_nucleus_pixels_are_one_nucleus():
    image = np.full((20, 20), 0.8, np.float32)
    cells = np.zeros((20, 20), np.int32)
    cells[2:18, 2:18] = 1
    nuclei = np.zeros((20, 20), bool)
    nuclei[6:9, 6:9] = nuclei[9:12, 9:12] = True  # touching at one corner: 8-connected, one nucleus
    assert measure_cells(image, cells, nuclei)["nucleus_count"].tolist() == [1]


def test_nan_pixels_one_pixel_and_border_cells():
    image = np.random.default_rng(0).random((40, 40))
    cells = np.zeros((40, 40), np.int32)
    cells[0:10, 0:10] = 1  # touches the border
    cells[20, 20] = 2  # one pixel
    cells[25:35, 25:35] = 3
    cells[12:14, 30:32] = 4  # every pixel NaN
    image[25, 25:30] = np.nan
    image[12:14, 30:32] = np.nan
    table = measure_cells(image, cells).set_index("label")
    assert bool(table.loc[1, "touches_border"]) and not bool(table.loc[3, "touches_border"])
    assert table.loc[2, "cell_area"] == 1 and table.loc[2, "cell_perimeter"] == 0
    assert np.isnan(table.loc[2, "cell_circularity"]) and table.loc[2, "cell_eccentricity"] == 0
    assert table.loc[3, "nan_pixels"] == 5
    valid = image[25:35, 25:35][np.isfinite(image[25:35, 25:35])]
    assert table.loc[3, "cell_intensity_mean"] == pytest.approx(valid.mean())
    assert table.loc[3, "cell_intensity_max"] == pytest.approx(valid.max())
    assert np.isnan(table.loc[4, "cell_intensity_mean"]) and table.loc[4, "nan_pixels"] == 4
    assert table.loc[4, "cell_area"] == 4  # shape is still measured
    lbp = table.loc[3, [f"lbp_{i}" for i in range(LBP_UNIFORM_BINS)]].to_numpy(float)
    assert lbp.sum() == pytest.approx(1.0)


def test_rgb_image_is_measured_on_luminance():
    image, cells, nuclei = field(2)
    rgb = np.stack([image, image, image], axis=-1)
    np.testing.assert_allclose(
        measure_cells(rgb, cells, nuclei)["cell_intensity_mean"],
        measure_cells(image, cells, nuclei)["cell_intensity_mean"],
        rtol=1e-5,
    )


def test_bad_input_gives_clear_messages():
    image = np.zeros((30, 30), np.float32)
    with pytest.raises(ImageError, match="same pixels"):
        measure_cells(image, np.zeros((20, 30), np.int32))
    with pytest.raises(ImageError, match="same pixels"):
        measure_cells(image, np.zeros((30, 30), np.int32), np.zeros((31, 30), bool))
    with pytest.raises(ImageError, match="integers"):
        measure_cells(image, np.zeros((30, 30), np.float32))
    with pytest.raises(ImageError, match="Labels image"):
        measure_cells(image, "cells.tif")
    with pytest.raises(ImageError, match="2-D gray"):
        measure_cells(np.zeros((2, 3, 30, 30)), np.zeros((30, 30), np.int32))
    empty = measure_cells(image, np.zeros((30, 30), np.int32))
    assert len(empty) == 0 and list(empty.columns) == feature_columns()


def test_lbp_codes_and_uniform_mapping():
    rng = np.random.default_rng(0)
    gray = rng.random((24, 24)).astype(np.float32)
    codes = lbp_codes(gray)
    # Reference: direct bit test of one interior pixel, neighbours in circular order.
    y, x = 10, 13
    order = [(0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1)]
    expected = sum(int(gray[y + dy, x + dx] >= gray[y, x]) << bit for bit, (dy, dx) in enumerate(order))
    assert codes[y, x] == expected
    assert (lbp_codes(np.ones((5, 5))) == 255).all()
    # Rotation-invariant uniform codes: number of set bits when ≤ 2 transitions around the circle, else 9.
    assert UNIFORM_LUT[0] == 0 and UNIFORM_LUT[255] == 8 and UNIFORM_LUT[0b00000111] == 3
    assert UNIFORM_LUT[0b01010101] == LBP_UNIFORM_BINS - 1  # non-uniform
    assert all(UNIFORM_LUT[(0b00001111 << r | 0b00001111 >> (8 - r)) & 255] == 4 for r in range(8))
    hist = lbp_histogram(gray, bins=256)
    assert hist.shape == (256,) and hist.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        lbp_histogram(gray, bins=7)


def test_benchmark_field_is_fast_enough_per_cell():
    """Not the benchmark, a guard: 400 cells on 512² measure in well under a second."""
    import time

    from napari_cervix.synth import generate_cell_field

    image, cells, nuclei = generate_cell_field((512, 512), 400, seed=0)
    start = time.perf_counter()
    table = measure_cells(image, cells, nuclei)
    assert time.perf_counter() - start < 2.0
    assert len(table) == 400 and (table["nucleus_count"] == 1).all()
