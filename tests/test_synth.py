import numpy as np
import pytest
from scipy import ndimage

from napari_cervix._sample_data import make_rgb_smear_sample, make_smear_sample
from napari_cervix.synth import generate_cell_field, generate_smear, generate_smear_field


def test_smear_is_deterministic_per_seed():
    a, b = generate_smear(seed=7), generate_smear(seed=7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.cells.to_stack(), b.cells.to_stack())
    assert np.array_equal(a.cells.nuclei.to_stack(), b.cells.nuclei.to_stack())
    assert not np.array_equal(a.image, generate_smear(seed=8).image)


def test_smear_ground_truth_is_consistent():
    sample = generate_smear(seed=3, n_cells=(2, 10))
    n = len(sample.cells)
    assert 2 <= n <= 10
    assert sample.image.shape == (512, 512) and sample.image.dtype == np.uint8
    assert sample.cells.shape == (512, 512) and list(sample.cells.ids) == list(range(1, n + 1))
    # one nucleus per cell, linked to it by id, as generated
    assert list(sample.cells.nucleus_cell_ids) == list(range(1, n + 1))
    cells, cell_nuclei = sample.cells.to_stack(), sample.cells.nuclei.to_stack()
    for cell, nucleus in zip(cells, cell_nuclei):
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
    coverage = sample.cells.to_stack().sum(axis=0)
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
    assert len(sample.cells) == 4 and sample.cells.shape == sample.image.shape == (200, 300)
    assert np.array_equal(sample.semantic_target() == 2, sample.nuclei)
    empty = generate_smear(shape=(64, 64), n_cells=0, seed=1)
    assert len(empty.cells) == 0 and empty.cells.shape == (64, 64) and not empty.nuclei.any()


def test_rgb_smear_has_same_ground_truth_as_gray():
    gray, rgb = generate_smear(seed=5), generate_smear(seed=5, rgb=True)
    assert rgb.image.shape == (512, 512, 3) and rgb.image.dtype == np.uint8
    assert np.array_equal(gray.cells.cell_labels(), rgb.cells.cell_labels())
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


def test_smear_field_tiles_smears_into_a_large_overlapping_field():
    field = generate_smear_field((1024, 1536), tile=512, n_cells=(7, 8), seed=0)
    assert field.image.shape == (1024, 1536) and 6 * 7 <= len(field.cells) <= 6 * 8
    # the tile at row 1, column 2 is generate_smear of its own, cells and nuclei moved to its place
    assert field.image[512:, 1024:].std() > 5 and field.nuclei[512:, 1024:].any()
    assert np.array_equal(field.cells.nuclei.union(), field.nuclei)
    counts = field.cells.nuclei_per_cell()
    assert np.all(counts == 1)  # each cell keeps its own nucleus across the move
    cells = field.cells
    for k, (box, nucleus) in enumerate(cells.nuclei):  # every nucleus lies inside its own cell
        own = cells.cells.crop_in(cells.index_of(cells.nucleus_cell_ids[k]), box)
        assert not np.any(nucleus & ~own)


@pytest.mark.parametrize("make, ndim", [(make_smear_sample, 2), (make_rgb_smear_sample, 3)])
def test_sample_data_layers(make, ndim):
    (image, image_kwargs, image_type), (cells, cells_kwargs, cells_type), (nuclei, _, nuclei_type), outlines = make()
    assert (image_type, cells_type, nuclei_type, outlines[2]) == ("image", "labels", "labels", "shapes")
    assert cells_kwargs["name"] == "ground truth cell labels" and outlines[1]["name"] == "ground truth cells"
    assert image.ndim == ndim and image_kwargs["name"].startswith("synthetic smear")
    assert image_kwargs.get("rgb", False) == (ndim == 3)
    n = cells.max()
    assert n >= 2 and np.array_equal(np.unique(cells), np.arange(n + 1))  # every cell visible
    assert np.array_equal(np.unique(nuclei), np.arange(n + 1))
    assert nuclei.shape == cells.shape == image.shape[:2]
