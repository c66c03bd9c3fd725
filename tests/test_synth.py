import numpy as np
import pytest
from scipy import ndimage

from napari_cervix._sample_data import cells_to_labels, make_rgb_smear_sample, make_smear_sample
from napari_cervix.synth import generate_cell_field, generate_smear


def test_smear_is_deterministic_per_seed():
    a, b = generate_smear(seed=7), generate_smear(seed=7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.cells, b.cells)
    assert np.array_equal(a.meta["cell_nuclei"], b.meta["cell_nuclei"])
    assert not np.array_equal(a.image, generate_smear(seed=8).image)


def test_smear_ground_truth_is_consistent():
    sample = generate_smear(seed=3, n_cells=(2, 10))
    n = len(sample.cells)
    assert 2 <= n <= 10
    assert sample.image.shape == (512, 512) and sample.image.dtype == np.uint8
    assert sample.cells.shape == (n, 512, 512) and sample.cells.dtype == bool
    cell_nuclei = sample.meta["cell_nuclei"]
    assert cell_nuclei.shape == sample.cells.shape
    for cell, nucleus in zip(sample.cells, cell_nuclei):
        assert nucleus.sum() > 50  # a real nucleus, not a speck
        assert not np.any(nucleus & ~cell)  # inside its own cell
        assert cell.sum() > 10 * nucleus.sum()
    assert np.array_equal(sample.nuclei, cell_nuclei.any(axis=0))
    # Nuclei never touch, so connected components recover exactly one per cell.
    _, n_components = ndimage.label(sample.nuclei, structure=np.ones((3, 3)))
    assert n_components == n


def test_smear_looks_like_isbi_synthetic_frames():
    sample = generate_smear(seed=3)
    image = sample.image.astype(float)
    coverage = sample.cells.sum(axis=0)
    background = image[coverage == 0].mean()
    single = image[(coverage == 1) & ~sample.nuclei].mean()
    double = image[(coverage == 2) & ~sample.nuclei].mean()
    nucleus = image[sample.nuclei].mean()
    assert 220 < background < 245
    assert 160 < single < 215
    assert double < single - 10  # translucent cells: overlaps are darker
    assert nucleus < 140


def test_fixed_cell_count_and_custom_shape():
    sample = generate_smear(shape=(200, 300), n_cells=4, cell_radius=(20, 30), seed=1)
    assert sample.cells.shape == (4, 200, 300) and sample.image.shape == (200, 300)
    assert np.array_equal(sample.semantic_target() == 2, sample.nuclei)
    empty = generate_smear(shape=(64, 64), n_cells=0, seed=1)
    assert empty.cells.shape == (0, 64, 64) and not empty.nuclei.any()


def test_rgb_smear_has_same_ground_truth_as_gray():
    gray, rgb = generate_smear(seed=5), generate_smear(seed=5, rgb=True)
    assert rgb.image.shape == (512, 512, 3) and rgb.image.dtype == np.uint8
    assert np.array_equal(gray.cells, rgb.cells)
    # Hematoxylin nuclei: blue dominates red and green.
    r, g, b = (rgb.image[..., c][rgb.nuclei].mean() for c in range(3))
    assert b > r and b > g


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shape": (8, 8)}, "at least 16"),
        ({"n_cells": (5, 2)}, "low <= high"),
        ({"n_cells": 2.5}, "whole numbers"),
        ({"cell_radius": (0, 10)}, "low <= high"),
        ({"shape": (20, 20), "cell_radius": (200, 300)}, "could not place"),
    ],
)
def test_smear_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_smear(seed=0, **kwargs)


def test_cell_field_labels_are_exact_and_non_overlapping():
    image, cells, nuclei = generate_cell_field((600, 800), 300, seed=2)
    assert image.shape == cells.shape == nuclei.shape == (600, 800)
    assert image.dtype == np.uint8 and cells.dtype == nuclei.dtype == np.int32
    assert np.array_equal(np.unique(cells), np.arange(301))
    assert np.array_equal(np.unique(nuclei), np.arange(301))
    assert np.all(cells[nuclei > 0] == nuclei[nuclei > 0])  # nucleus inside the cell of its label
    # Cells keep a gap: the foreground falls apart into exactly one component per cell.
    _, n_components = ndimage.label(cells > 0, structure=np.ones((3, 3)))
    assert n_components == 300
    cytoplasm = image[(cells > 0) & (nuclei == 0)].mean()
    assert image[cells == 0].mean() > cytoplasm > image[nuclei > 0].mean()
    again = generate_cell_field((600, 800), 300, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip((image, cells, nuclei), again))


def test_cell_field_rejects_overcrowding():
    with pytest.raises(ValueError, match="do not fit"):
        generate_cell_field((64, 64), 1000, seed=0)
    _, cells, _ = generate_cell_field((64, 64), 0, seed=0)
    assert not cells.any()


def test_cells_to_labels_puts_smallest_cell_on_top():
    big = np.zeros((6, 6), bool)
    big[0:5, 0:5] = True
    small = np.zeros((6, 6), bool)
    small[3:6, 3:6] = True
    labels = cells_to_labels(np.stack([small, big]))
    expected = np.zeros((6, 6), np.int32)
    expected[0:5, 0:5] = 2
    expected[3:6, 3:6] = 1
    assert np.array_equal(labels, expected)


@pytest.mark.parametrize("make, ndim", [(make_smear_sample, 2), (make_rgb_smear_sample, 3)])
def test_sample_data_layers(make, ndim):
    (image, image_kwargs, image_type), (nuclei, _, nuclei_type), (cells, _, cells_type) = make()
    assert (image_type, nuclei_type, cells_type) == ("image", "labels", "labels")
    assert image.ndim == ndim and image_kwargs["name"].startswith("synthetic smear")
    assert image_kwargs.get("rgb", False) == (ndim == 3)
    n = cells.max()
    assert n >= 2 and np.array_equal(np.unique(cells), np.arange(n + 1))  # every cell visible
    assert np.array_equal(np.unique(nuclei), np.arange(n + 1))
    assert nuclei.shape == cells.shape == image.shape[:2]
