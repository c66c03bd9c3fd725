"""The one representation of overlapping cells: round trips, the overlap rule, nucleus links, memory."""

import numpy as np
import pytest

from napari_cervix.cellset import CellSet, Masks
from napari_cervix.geometry import label_components, pad_to_multiple, smallest_wins_order
from napari_cervix.synth import generate_smear


def disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def overlapping_cells(shape=(60, 80)):
    big, small, edge = disk(shape, 30, 30, 22), disk(shape, 30, 45, 8), disk(shape, 58, 78, 5)
    return np.array([big, small, edge])


def test_stack_round_trip_keeps_masks_boxes_and_numbering():
    stack = overlapping_cells()
    with_empty = np.concatenate([stack[:1], np.zeros((1, *stack.shape[1:]), bool), stack[1:]])
    cell_set = CellSet.from_stack(with_empty, scores=[0.9, 0.1, 0.8, 0.7])
    assert len(cell_set) == 3 and list(cell_set.ids) == [1, 3, 4]  # the empty mask has no cell; ids keep positions
    assert np.array_equal(cell_set.to_stack(), stack)
    assert np.allclose(cell_set.scores, [0.9, 0.8, 0.7])
    assert list(cell_set.areas) == [int(m.sum()) for m in stack]
    for (cell_id, box, crop), mask in zip(cell_set, stack):
        y0, x0, y1, x1 = box
        assert cell_id in (1, 3, 4) and crop.shape == (y1 - y0, x1 - x0)
        assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()  # tight box
        assert mask[y0:y1, x0:x1].sum() == mask.sum() == crop.sum()  # nothing lost
    assert np.array_equal(cell_set.cells.mask(1), stack[1]) and cell_set.index_of(3) == 1


def test_smallest_cell_wins_each_overlapped_pixel():
    stack = overlapping_cells()
    labels = CellSet.from_stack(stack).cell_labels()
    big, small, _ = stack
    assert np.all(labels[small] == 2) and np.all(labels[big & ~small] == 1)
    assert labels[0, 0] == 0 and labels.dtype == np.int32
    # equal areas: the later mask is painted last
    assert list(smallest_wins_order(np.array([5, 9, 5]))) == [1, 0, 2]


def test_label_image_round_trip():
    labels = np.zeros((20, 30), np.int32)
    labels[2:6, 3:9] = 4
    labels[10:18, 20:28] = 7
    labels[0, 29] = 7  # one label may be several pieces: still one cell
    cell_set = CellSet.from_labels(labels)
    assert list(cell_set.ids) == [4, 7]
    assert np.array_equal(cell_set.cell_labels(), labels)
    assert list(cell_set.boxes[1]) == [0, 20, 18, 30]


def test_nuclei_link_to_the_cell_covering_most_then_the_smaller_and_orphans_get_ids_above():
    shape = (60, 80)
    stack = overlapping_cells(shape)
    in_both = disk(shape, 30, 45, 3)  # inside the big and the small cell
    in_big = disk(shape, 30, 15, 4)
    stray = disk(shape, 3, 75, 2)  # in no cell
    cell_set = CellSet.from_stack(stack, nuclei=np.array([in_both, in_big, stray]))
    assert list(cell_set.nucleus_cell_ids) == [2, 1, 0]
    assert list(cell_set.nuclei_per_cell()) == [1, 1, 0]
    nuclei = cell_set.nucleus_labels()
    assert nuclei[30, 45] == 2 and nuclei[30, 15] == 1 and nuclei[3, 75] == 4  # orphan: above every cell id
    # from a union mask: one nucleus per 8-connected component, a diagonal step stays one nucleus
    union = in_both | in_big
    union[40, 40] = union[41, 41] = True
    linked = CellSet.from_stack(stack).with_nuclei_mask(union)
    assert len(linked.nuclei) == 3 and sorted(linked.nucleus_cell_ids) == [1, 1, 2]
    assert label_components(union).max() == 3


def test_subset_and_filter_keep_ids_and_their_nuclei():
    shape = (60, 80)
    stack = overlapping_cells(shape)
    nuclei = np.array([disk(shape, 30, 15, 4), disk(shape, 30, 45, 3), disk(shape, 3, 75, 2)])
    cell_set = CellSet.from_stack(stack, [0.9, 0.4, 0.8], nuclei, [0.9, 0.9, 0.2])
    kept = cell_set.filter(0.5)
    assert list(kept.ids) == [1, 3] and list(kept.nucleus_cell_ids) == [1]  # cell 2's nucleus left with it
    assert np.array_equal(kept.to_stack(), stack[[0, 2]])
    assert len(cell_set.subset([])) == 0 and list(cell_set.subset([2, 0]).ids) == [3, 1]


def test_rle_round_trip_matches_pycocotools():
    from pycocotools import mask as mask_utils

    shape = (37, 41)
    rng = np.random.default_rng(0)
    stack = rng.random((6, *shape)) < 0.3
    stack[0] = False
    stack[0, :, 5:8] = True  # whole columns: runs join across column ends
    stack[1, 36, 40] = True
    masks, _ = Masks.from_stack(stack)
    ours = masks.rle()
    for mask, rle in zip(stack, ours):
        reference = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert rle["counts"] == reference["counts"] and list(rle["size"]) == list(shape)
    back = Masks.from_rle(ours, scores=np.arange(6))
    assert np.array_equal(back.to_stack(), stack) and np.allclose(back.scores, np.arange(6))
    cell_set = CellSet.from_rle(shape, ours[:3], None, ours[3:])
    assert len(cell_set) == 3 and len(cell_set.nuclei) == 3


def test_memory_follows_the_cells_not_cells_times_pixels():
    shape = (8192, 8192)
    rng = np.random.default_rng(1)
    corners = np.stack([rng.integers(0, 8192 - 120, 500), rng.integers(0, 8192 - 120, 500)], axis=1)
    crop = disk((120, 120), 60, 60, 58)
    cells, kept = Masks.from_crops(shape, corners, [crop] * 500)
    cell_set = CellSet(cells, kept + 1)
    assert len(cell_set) == 500
    assert cell_set.nbytes < 500 * 117 * 117 + 100_000  # the crops and a few bytes per cell
    assert cell_set.nbytes < 1e-3 * 500 * shape[0] * shape[1]  # vs N×H×W: 33.5 GB
    assert sum(c.nbytes for c in cell_set.cells.crops) == cell_set.cells.nbytes - 500 * (4 * 8 + 4)


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="does not fit"):
        Masks((10, 10), [(0, 0, 4, 4)], [np.ones((3, 3), bool)])
    with pytest.raises(ValueError, match="distinct positive ids"):
        CellSet(Masks((10, 10), [(0, 0, 2, 2)] * 2, [np.ones((2, 2), bool)] * 2), [1, 1])
    with pytest.raises(ValueError, match="shape"):
        Masks.from_stack([np.zeros((3, 3)), np.zeros((4, 4))])


def test_pad_to_multiple_mirrors_or_fills():
    tile = np.arange(12, dtype=np.float32).reshape(3, 4)
    mirrored, size = pad_to_multiple(tile, 4)
    assert size == (3, 4) and mirrored.shape == (4, 4) and np.array_equal(mirrored[3], tile[2])
    filled, _ = pad_to_multiple(tile, 4, min_size=8, fill=-1.0)
    assert filled.shape == (8, 8) and np.all(filled[3:] == -1) and np.array_equal(filled[:3, :4], tile)


def test_concatenated_masks_keep_order_boxes_and_scores():
    first = Masks.from_stack(generate_smear((96, 96), n_cells=3, seed=1).cells.to_stack(), scores=[0.9, 0.8, 0.7])[0]
    second = Masks.from_stack(generate_smear((96, 96), n_cells=2, seed=2).cells.to_stack())[0]
    joined = Masks.concatenate([first, second])
    assert len(joined) == len(first) + len(second)
    assert np.array_equal(joined.to_stack(), np.concatenate([first.to_stack(), second.to_stack()]))
    assert np.allclose(joined.scores, np.concatenate([first.scores, second.scores]))
    with pytest.raises(ValueError, match="different images"):
        Masks.concatenate([first, Masks((50, 50))])


def test_a_grown_box_is_clipped_to_the_image():
    from napari_cervix.geometry import grow_box

    assert grow_box((5, 6, 10, 12), 2, (20, 30)) == (3, 4, 12, 14)
    assert grow_box((1, 0, 19, 30), 3, (20, 30)) == (0, 0, 20, 30)  # never outside the image
