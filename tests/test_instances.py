"""Instance segmentation without mmdet: results, overlap rules, tile merging, compositing augmentation,
layers, and the import-light contract. The network-dependent tests are in test_instances_mmdet.py."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from napari_cervix.cellset import CellSet, Masks
from napari_cervix.instances import InstanceResult, segment_instances, segment_instances_steps
from napari_cervix.instances.augment import (
    MIN_CELL_PIXELS,
    AnnotatedField,
    FieldSource,
    compose_field,
    crop_field,
    draw_field,
    nucleus_instances,
)
from napari_cervix.instances.inference import _Merger
from napari_cervix.instances.layers import layer_tuples
from napari_cervix.instances.model import Detector
from napari_cervix.synth import generate_smear
from napari_cervix.tiling import Tile, TileProgress, tile_grid


def disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def make_result(cells, nuclei, scores=None):
    cells = np.array(cells, bool)
    nuclei = np.array(nuclei, bool).reshape(-1, *cells.shape[1:])
    scores = np.linspace(0.9, 0.6, len(cells)).astype(np.float32) if scores is None else scores
    cell_set = CellSet.from_stack(cells, scores, nuclei, np.full(len(nuclei), 0.8), shape=cells.shape[1:])
    return InstanceResult(cell_set)


def test_import_does_not_load_torch_or_mmdet():
    code = (
        "import sys, napari_cervix.instances, napari_cervix.instances.commands, "
        "napari_cervix.instances.layers; "
        "print(sorted(m for m in ('torch', 'mmdet', 'mmcv', 'mmengine') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_smallest_cell_wins_overlaps_and_nuclei_carry_their_cell_id():
    shape = (80, 80)
    big, small = disk(shape, 40, 40, 30), disk(shape, 40, 60, 12)
    nucleus_big, nucleus_small, stray = disk(shape, 35, 30, 4), disk(shape, 40, 62, 3), disk(shape, 76, 3, 2)
    result = make_result([big, small], [nucleus_big, nucleus_small, stray])
    labels = result.cell_labels()
    assert labels[40, 60] == 2  # in both cells: the smaller one
    assert labels[40, 30] == 1 and labels[0, 0] == 0
    # every pixel of the small cell is visible; the big one keeps its non-overlapped part
    assert np.all(labels[small] == 2) and np.all(labels[big & ~small] == 1)
    assert list(result.nucleus_cell_ids) == [1, 2, 0]
    nuclei = result.nucleus_labels()
    assert nuclei[35, 30] == 1 and nuclei[40, 62] == 2
    assert nuclei[76, 3] == 3  # outside every cell: an id above the cells', never a cell's
    preds = result.to_predictions()
    assert len(preds) == 2 and len(preds.nuclei) == 3 and np.allclose(preds.nuclei.scores, 0.8)


def test_nucleus_in_an_overlap_goes_to_the_cell_covering_most_then_the_smaller():
    shape = (60, 60)
    a, b = disk(shape, 30, 25, 20), disk(shape, 30, 35, 10)
    nucleus = disk(shape, 30, 35, 3)  # inside both
    assert list(CellSet.from_stack([a, b], nuclei=nucleus[None]).nucleus_cell_ids) == [2]


def test_empty_result_gives_empty_layers():
    result = make_result(np.zeros((0, 32, 48)), np.zeros((0, 32, 48)), np.zeros(0, np.float32))
    assert result.cell_labels().shape == (32, 48) and not result.cell_labels().any()
    (labels, _, t1), (nuclei, _, t2), (polygons, kwargs, t3) = layer_tuples(result, "x")
    assert (t1, t2, t3) == ("labels", "labels", "shapes")
    assert polygons == [] and len(kwargs["features"]) == 0
    assert len(kwargs["metadata"]["cell_set"]) == 0 and kwargs["metadata"]["cell_set"].shape == (32, 48)


def test_layers_link_outlines_labels_and_nuclei_by_cell_id():
    shape = (100, 100)
    cells = [disk(shape, 40, 40, 25), disk(shape, 55, 60, 20)]
    result = make_result(cells, [disk(shape, 40, 35, 4), disk(shape, 60, 65, 4)])
    (cell_labels, ck, _), (nuclei, nk, _), (polygons, sk, _) = layer_tuples(result, "smear", {"scale": (1, 1)})
    features = sk["features"]
    assert list(features["cell_id"]) == [1, 2] and list(features["class"]) == ["cell", "cell"]
    assert list(features["area"]) == [int(c.sum()) for c in cells]
    assert np.allclose(features["score"], result.scores)
    assert sk["metadata"]["cell_set"] is result.cells  # the sparse cells, for measurement/classification
    for cell_id, polygon in zip(features["cell_id"], polygons):
        mask = cells[cell_id - 1]
        centre = polygon.mean(axis=0).round().astype(int)
        assert mask[tuple(centre)]  # the outline surrounds its own cell
        assert np.all(np.abs(polygon - np.clip(polygon, 0, 99)) < 1)
    assert nuclei[40, 35] == 1 and nuclei[60, 65] == 2
    # napari's Labels convention: features row i describes label i, background row 0 empty
    table = ck["features"]
    assert list(table["label"]) == [0, 1, 2] and np.isnan(table["score"][0])
    assert list(table["area"][1:]) == [int(c.sum()) for c in cells]
    assert set(np.unique(cell_labels)) == {0, 1, 2}
    assert ck["name"] == "smear cell labels" and nk["name"] == "smear nuclei" and sk["name"] == "smear cells"


def test_outline_of_a_disk_is_round():
    from napari_cervix.geometry import outline

    poly = outline(disk((64, 64), 32, 32, 20))
    radius = np.hypot(poly[:, 0] - 32, poly[:, 1] - 32)
    assert 19 < radius.mean() < 21 and len(poly) <= 256


def test_merger_joins_a_cell_cut_by_a_tile_border_and_keeps_overlapping_cells_apart():
    shape = (100, 160)
    left, right = Tile(0, 100, 0, 100, 0, 0), Tile(0, 100, 60, 160, 0, 1)
    crossing = disk(shape, 50, 80, 25)  # spans both tiles
    a, b = disk(shape, 30, 80, 12), disk(shape, 38, 84, 12)  # two overlapping cells inside the overlap
    merger = _Merger(shape)

    def seen(tile, masks):
        out = []
        for m in masks:
            part = np.zeros_like(m)
            part[tile.slices] = m[tile.slices]
            out.append(part[tile.slices])
        return np.array(out)

    for tile in (left, right):
        masks = seen(tile, [crossing, a, b])
        merger.add_tile(tile, masks, np.array([0.9, 0.8, 0.7]), np.zeros(3, int))
    merged = merger.masks(0, 0.5)
    assert len(merged) == 3 and np.allclose(merged.scores, [0.9, 0.8, 0.7])  # never duplicated, never fused
    cells = merged.to_stack()
    ious = [max((c & m).sum() / (c | m).sum() for c in cells) for m in (crossing, a, b)]
    assert min(ious) > 0.99  # the cut cell is whole again


class OracleDetector(Detector):
    """Stands in for the network only: returns the true cells and nuclei visible in the tile, so the
    real tiling, merging, thresholding and nucleus assignment are tested exactly."""

    def __init__(self, sample, score=0.9):
        super().__init__(
            module=None, classes=("cell", "nucleus"), in_channels=1, train_size=512, meta={"architecture": "oracle"}
        )
        self.sample, self.score, self.calls = sample, score, []

    def predict_tile(self, tile, *, score_floor=0.05, max_detections=100):
        t = self.grid[len(self.calls)]  # tiles come in tile_grid order
        assert tile.shape == (t.y1 - t.y0, t.x1 - t.x0)
        self.calls.append(t)
        cells = [c[t.slices] for c in self.sample.cells.to_stack() if c[t.slices].sum() > 20]
        nuclei = [
            n[t.slices]
            for n in nucleus_instances(self.sample.nuclei, self.sample.shape).to_stack()
            if n[t.slices].any()
        ]
        masks = np.array(cells + nuclei, bool).reshape(-1, *tile.shape)
        labels = np.array([0] * len(cells) + [1] * len(nuclei))
        return (
            masks[:max_detections],
            np.full(len(masks), self.score, np.float32)[:max_detections],
            labels[:max_detections],
        )


@pytest.mark.parametrize("seed,tile,overlap", [(3, 256, 96), (7, 200, 64), (11, 300, 128)])
def test_tiled_segmentation_recovers_every_cell_once(seed, tile, overlap):
    sample = generate_smear((700, 900), n_cells=12, seed=seed)
    oracle = OracleDetector(sample)
    oracle.grid = tile_grid(sample.shape, tile, overlap)
    # the tiling and merging alone: the oracle's cells are exact, so no semantic edge is drawn on them
    steps = segment_instances_steps(sample.image, oracle, tile_size=tile, overlap=overlap, refine_cells=False)
    progress = []
    try:
        while True:
            progress.append(next(steps))
    except StopIteration as stop:
        result = stop.value
    assert progress[-1] == TileProgress(len(oracle.grid), len(oracle.grid)) and len(oracle.grid) > 6
    assert len(result) == len(sample.cells)
    found = result.cells.to_stack()
    for truth in sample.cells.to_stack():
        best = max((c & truth).sum() / (c | truth).sum() for c in found)
        assert best > 0.97
    assert len(result.nuclei) == len(nucleus_instances(sample.nuclei, sample.shape))
    # each generated cell has its nucleus inside it: every nucleus is assigned to a cell
    assert np.all(result.nucleus_cell_ids > 0)


def test_score_threshold_drops_detections_and_bad_options_are_refused():
    sample = generate_smear((256, 256), n_cells=3, seed=1)
    oracle = OracleDetector(sample, score=0.4)
    oracle.grid = tile_grid(sample.shape, 512, 128)
    assert len(segment_instances(sample.image, oracle, score_threshold=0.5)) == 0
    with pytest.raises(ValueError, match="score_threshold"):
        segment_instances(sample.image, oracle, score_threshold=1.5)
    with pytest.raises(ValueError, match="max_detections"):
        segment_instances(sample.image, oracle, max_detections=0)
    with pytest.raises(ValueError, match="2-D gray"):
        segment_instances(np.zeros((4, 4, 4, 4)), oracle)


@pytest.mark.parametrize("kind", ["uint16", "float", "rgb"])
def test_16bit_float_and_rgb_inputs_are_normalised_alike(kind):
    from napari_cervix.instances.model import prepare_gray

    sample = generate_smear((64, 64), n_cells=2, seed=0)
    ref = prepare_gray(sample.image)
    image = {
        "uint16": sample.image.astype(np.uint16) * 257,
        "float": sample.image / 255.0,
        "rgb": np.repeat(sample.image[..., None], 3, -1),
    }[kind]
    assert np.allclose(prepare_gray(image), ref, atol=0.6)


def test_compositing_builds_overlapping_fields_with_consistent_targets():
    samples = [generate_smear((256, 256), n_cells=(3, 5), seed=s, cell_radius=(30, 50)) for s in range(3)]
    source = FieldSource(samples, "synthetic")
    assert len(source.sprites) >= 6
    rng = np.random.default_rng(0)
    overlaps = 0
    for _ in range(8):
        field = compose_field(source, rng, size=256, n_cells=5)
        assert field.image.shape == (256, 256) and field.image.dtype == np.float32
        assert len(field.masks) == len(field.labels)
        cells = field.masks[field.labels == 0]
        assert np.all(cells.sum(axis=(1, 2)) >= MIN_CELL_PIXELS)
        overlaps += int((cells.sum(0) > 1).any())
        # translucent overlap: the image is darker where cells overlap than where one cell lies
        if (cells.sum(0) > 1).any():
            assert field.image[cells.sum(0) > 1].mean() < field.image[cells.sum(0) == 1].mean()
        # nuclei lie inside cells
        for nucleus in field.masks[field.labels == 1]:
            assert (nucleus & cells.any(0)).sum() >= 0.9 * nucleus.sum()
    assert overlaps >= 4


def test_crop_keeps_large_cut_cells_and_drops_slivers():
    sample = generate_smear((400, 400), n_cells=6, seed=5)
    source = FieldSource([sample])
    rng = np.random.default_rng(1)
    for _ in range(5):
        field = crop_field(source.fields[0], 200, rng)
        assert field.image.shape == (200, 200) and field.masks.shape[1:] == (200, 200)
        sizes = field.masks.sum(axis=(1, 2))
        assert np.all(sizes[field.labels == 0] >= MIN_CELL_PIXELS)
    field = draw_field([source], rng, size=128)
    assert field.image.shape == (128, 128)


def test_crop_magnifies_a_real_field_by_its_scale_factor():
    image = np.full((100, 100), 200.0, np.float32)
    image[40:60, 40:60] = 50.0
    square = Masks((100, 100), [(40, 40, 60, 60)], [np.ones((20, 20), bool)])
    field = AnnotatedField(image, square, np.array([1]))
    rng = np.random.default_rng(0)
    magnified = crop_field(field, 200, rng, scale_range=(2.0, 2.0))  # the whole field, twice as large
    assert magnified.masks.shape == (1, 200, 200) and magnified.masks.sum() == 40 * 40
    # The image is resampled with it: the dark square lies under the mask (edges blend with bilinear).
    core = ndimage.binary_erosion(magnified.masks[0])
    assert magnified.image[core].max() < 100 < magnified.image[~ndimage.binary_dilation(magnified.masks[0])].min()
    shrunk = crop_field(field, 50, rng, scale_range=(0.5, 0.5))
    assert shrunk.masks.sum() == 10 * 10 and shrunk.image.shape == (50, 50)


def test_composite_backgrounds_show_no_annotated_nucleus_outside_the_cells():
    # A leukocyte-like nucleus in no annotated cell (CRIC, ISBI 2015): pasted as background, a
    # composite would show it unlabelled.
    sample = generate_smear((256, 256), n_cells=1, seed=3, cell_radius=40)
    free = ~ndimage.binary_dilation(sample.cells.union(), iterations=12)
    cy, cx = np.argwhere(free)[len(np.argwhere(free)) // 2]
    leukocyte = disk(sample.image.shape, cy, cx, 6) & free
    sample.image = np.where(leukocyte, 30, sample.image).astype(np.uint8)
    sample.nuclei = sample.nuclei | leukocyte
    background = FieldSource([sample]).backgrounds[0]
    assert background[leukocyte].mean() > np.median(sample.image[free]) - 20


def test_training_source_refuses_samples_without_cells():
    sample = generate_smear((64, 64), n_cells=1, seed=0)
    sample.cells = None
    with pytest.raises(ValueError, match="per-cell"):
        FieldSource([sample], "nuclei-only")


def _two_cells_and_semantic(shape=(100, 170)):
    """Detected: cell 1 with its nucleus, cell 2 without one. Semantic: both cells' nuclei, a second
    nucleus in cell 1, and a third cell's nucleus the detector missed entirely."""
    cell_one, cell_two = disk(shape, 30, 30, 22), disk(shape, 30, 100, 22)
    detected = CellSet.from_stack([cell_one, cell_two], [0.9, 0.8], [disk(shape, 30, 30, 5)], [0.95], shape=shape)
    nuclei = {"one": disk(shape, 30, 30, 5), "two": disk(shape, 30, 100, 5)}
    nuclei |= {"in one": disk(shape, 38, 44, 4), "alone": disk(shape, 75, 140, 5)}
    semantic = np.zeros(shape, np.uint8)
    semantic[cell_one | cell_two | disk(shape, 75, 140, 18)] = 1
    probability = np.full(shape, 0.1, np.float32)
    for name, mask in nuclei.items():
        semantic[mask] = 2
        probability[mask] = {"one": 0.9, "two": 0.7, "in one": 0.6, "alone": 0.8}[name]
    return detected, semantic, probability, nuclei


def test_completion_adds_missed_nuclei_with_cells_and_keeps_every_detection():
    from napari_cervix.instances.completion import complete_cell_set

    detected, semantic, probability, nuclei = _two_cells_and_semantic()
    merged, counts = complete_cell_set(detected, semantic, probability, max_cell_radius_px=40)
    assert counts == {"nuclei": 3, "cells": 2, "first_id": 3}  # "one" was detected already
    assert merged.ids.tolist() == [1, 2, 3, 4]
    for k in range(2):  # the detections as they were
        np.testing.assert_array_equal(merged.cells.mask(k), detected.cells.mask(k))
    assert np.allclose(merged.scores[:2], [0.9, 0.8]) and np.isclose(merged.nuclei.scores[0], 0.95)

    def nucleus_at(point):
        return next(k for k in range(len(merged.nuclei)) if merged.nuclei.mask(k)[point])

    two, in_one, alone = nucleus_at((30, 100)), nucleus_at((38, 44)), nucleus_at((75, 140))
    assert merged.nucleus_cell_ids[two] == 2  # joins the detected cell that had no nucleus
    assert np.isclose(merged.nuclei.scores[two], 0.7)
    for k in (in_one, alone):  # cell 1 has a nucleus, "alone" lies in no cell: each gets a cell of its own
        cell = merged.index_of(merged.nucleus_cell_ids[k])
        assert cell >= 2 and merged.cells.mask(cell)[merged.nuclei.mask(k)].all()
        assert np.isclose(merged.scores[cell], merged.nuclei.scores[k])
    lone_cell = merged.cells.mask(merged.index_of(merged.nucleus_cell_ids[alone]))
    np.testing.assert_array_equal(lone_cell, semantic.astype(bool) & disk(semantic.shape, 75, 140, 18))
    # the radius bounds a new cell
    small, _ = complete_cell_set(detected, semantic, probability, max_cell_radius_px=8)
    lone_small = small.cells.mask(small.index_of(small.nucleus_cell_ids[alone]))
    assert lone_small.sum() < lone_cell.sum() and not lone_small[75, 140 - 15]


def test_completion_without_missed_nuclei_returns_the_detections_and_refuses_another_grid():
    from napari_cervix.instances.completion import complete_cell_set

    detected, semantic, probability, _ = _two_cells_and_semantic()
    semantic[semantic == 2] = 1
    semantic[disk(semantic.shape, 30, 30, 5)] = 2  # only the detected nucleus
    same, counts = complete_cell_set(detected, semantic, probability, 40)
    assert same is detected and counts["nuclei"] == 0
    with pytest.raises(ValueError, match="semantic labels are"):
        complete_cell_set(detected, semantic[:50], probability[:50], 40)


def test_completion_splits_a_cluster_the_detector_half_found_and_ignores_rims():
    from napari_cervix.instances.completion import complete_cell_set

    shape = (80, 120)
    cell = disk(shape, 40, 60, 35)
    detected = CellSet.from_stack([cell], [0.9], [disk(shape, 40, 45, 8)], [0.9], shape=shape)
    semantic = np.where(cell, 1, 0).astype(np.uint8)
    semantic[disk(shape, 40, 45, 10) | disk(shape, 40, 66, 9)] = 2  # one component: two touching nuclei
    probability = (semantic == 2).astype(np.float32)
    merged, counts = complete_cell_set(detected, semantic, probability, 50, min_nucleus_px=40)
    assert counts["nuclei"] == 1  # the undetected nucleus, not the 2 px rim around the detected one
    added = merged.nuclei.mask(1)
    assert added[40, 66] and not added[40, 45] and added.sum() > 0.8 * disk(shape, 40, 66, 9).sum()
    # a piece smaller than the minimum area is no nucleus
    assert complete_cell_set(detected, semantic, probability, 50, min_nucleus_px=400)[1]["nuclei"] == 0


class MissingNucleusDetector(OracleDetector):
    """The oracle, blind to one nucleus (the one of ``missed``, a (row, col) inside it)."""

    def __init__(self, sample, missed):
        super().__init__(sample)
        self.missed = missed

    def predict_tile(self, tile, *, score_floor=0.05, max_detections=100):
        masks, scores, labels = super().predict_tile(tile, score_floor=score_floor, max_detections=max_detections)
        keep = ~((labels == 1) & masks[:, self.missed[0], self.missed[1]])
        return masks[keep], scores[keep], labels[keep]


def test_color_fields_get_the_nuclei_the_detector_missed_from_the_semantic_model():
    sample = generate_smear((384, 384), n_cells=4, seed=5, rgb=True)
    truth = nucleus_instances(sample.nuclei, sample.shape)
    largest = int(np.argmax(truth.areas))
    missed = tuple(int(v) for v in ndimage.center_of_mass(truth.mask(largest)))
    assert truth.mask(largest)[missed]

    def run(**options):
        detector = MissingNucleusDetector(sample, missed)
        detector.grid = tile_grid(sample.shape, 512, 128)
        return segment_instances(sample.image, detector, estimate_scale=False, **options)

    alone = run(complete_nuclei=False)
    assert len(alone.nuclei) == len(truth) - 1 and not alone.nuclei_union()[missed]
    assert alone.meta["completed"] == {}
    completed = run()  # default: on for a color image
    assert completed.nuclei_union()[missed] and completed.meta["completed"]["nuclei"] >= 1
    assert len(completed) >= len(alone) and completed.cell_ids[: len(alone)].tolist() == alone.cell_ids.tolist()
    gray = generate_smear((384, 384), n_cells=4, seed=5)
    detector = MissingNucleusDetector(gray, missed)
    detector.grid = tile_grid(gray.shape, 512, 128)
    assert segment_instances(gray.image, detector, estimate_scale=False).meta["completed"] == {}  # gray: off


def test_refinement_redraws_each_nucleus_boundary_and_keeps_what_the_semantic_model_rejects():
    from napari_cervix.instances.refinement import redraw_nuclei

    shape = (60, 120)
    true_a, true_b = disk(shape, 30, 25, 8), disk(shape, 30, 75, 8)
    detected_a, detected_b = disk(shape, 30, 25, 7), disk(shape, 30, 75, 9)  # one too small, one too large
    lone = disk(shape, 30, 105, 5)  # the semantic model sees no nucleus there
    cells = CellSet.from_stack(
        [disk(shape, 30, 25, 20), disk(shape, 30, 75, 20), disk(shape, 30, 105, 12)],
        [0.9, 0.8, 0.7],
        [detected_a, detected_b, lone],
        [0.95, 0.85, 0.6],
        nucleus_cell_ids=[1, 2, 3],
        shape=shape,
    )
    probability = np.full(shape, 0.05, np.float32)
    probability[true_a | true_b] = 0.9
    refined, counts = redraw_nuclei(cells, probability)
    assert counts == {"refined": 2, "kept": 1}
    grown = refined.nuclei.mask(0)  # grown towards the true edge, never past it
    assert (grown >= detected_a).all() and (grown <= true_a).all()
    assert grown.sum() - detected_a.sum() >= 0.8 * (true_a.sum() - detected_a.sum())  # most of the rim it lacked
    np.testing.assert_array_equal(refined.nuclei.mask(1), true_b)  # its rim dropped
    np.testing.assert_array_equal(refined.nuclei.mask(2), lone)  # rejected as a whole: kept as detected
    assert refined.cells is cells.cells and refined.ids.tolist() == cells.ids.tolist()
    np.testing.assert_allclose(refined.nuclei.scores, cells.nuclei.scores)
    assert refined.nucleus_cell_ids.tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="nucleus probability is"):
        redraw_nuclei(cells, probability[:30])


def test_refinement_adds_no_pixel_two_nuclei_both_claim():
    from napari_cervix.instances.refinement import redraw_nuclei

    shape = (40, 60)
    left, right = np.zeros(shape, bool), np.zeros(shape, bool)
    left[10:30, 10:29], right[10:30, 30:50] = True, True  # one column (29) between them
    cells = CellSet.from_stack([left | right], [0.9], [left, right], [0.9, 0.9], shape=shape)
    refined, _ = redraw_nuclei(cells, np.ones(shape, np.float32))
    assert not refined.nuclei.union()[10:30, 29].any()  # both would claim it: neither takes it
    assert refined.nuclei.mask(0)[10:30, 9].all() and refined.nuclei.mask(1)[10:30, 50].all()


@pytest.mark.parametrize("rgb", [False, True])
def test_detected_nuclei_are_refined_by_default_and_kept_as_detected_when_asked(rgb):
    def run(sample, **options):
        oracle = OracleDetector(sample)  # answers one pass over the grid
        oracle.grid = tile_grid(sample.shape, 512, 128)
        return segment_instances(sample.image, oracle, estimate_scale=False, complete_nuclei=False, **options)

    sample = generate_smear((256, 256), n_cells=3, seed=2, rgb=rgb)
    as_detected = run(sample, refine_nuclei=False)
    assert as_detected.meta["refined"] == {}
    truth = nucleus_instances(sample.nuclei, sample.shape)
    assert sorted(as_detected.nuclei.areas.tolist()) == sorted(truth.areas.tolist())  # the oracle's own masks
    refined = run(sample)
    counts = refined.meta["refined"]
    assert len(refined.nuclei) == len(as_detected.nuclei) > 0
    assert counts["refined"] + counts["kept"] == len(refined.nuclei) and counts["refined"] > 0
    assert sorted(refined.nuclei.areas.tolist()) != sorted(truth.areas.tolist())  # redrawn by the semantic model
    assert refined.cell_ids.tolist() == as_detected.cell_ids.tolist()
    assert refined.nucleus_cell_ids.tolist() == as_detected.nucleus_cell_ids.tolist()


def test_cell_refinement_moves_edges_against_the_background_only():
    from napari_cervix.instances.refinement import redraw_cells

    shape = (80, 140)
    true_a, true_b = disk(shape, 40, 40, 25), disk(shape, 40, 85, 25)  # overlapping cells
    lone = disk(shape, 40, 125, 8)  # the semantic model sees no cell there
    detected_a = disk(shape, 40, 40, 23)  # two px short of its edge
    detected_b = true_b | np.roll(true_b, 1, axis=1)  # one px past its right edge
    cells = CellSet.from_stack([detected_a, detected_b, lone], [0.9, 0.8, 0.7], shape=shape)
    foreground = true_a | true_b
    faint = disk(shape, 40, 95, 4)  # cytoplasm the semantic model calls background, deep inside b
    foreground &= ~faint
    refined, counts = redraw_cells(cells, foreground)
    assert counts == {"refined": 2, "kept": 1}
    a, b = refined.cells.mask(0), refined.cells.mask(1)
    assert (a >= detected_a).all() and (a <= true_a | true_b).all()
    grown = a & ~detected_a
    assert grown.any() and (ndimage.distance_transform_edt(~detected_a)[grown] <= 1.5).all()  # one px at most
    assert not (grown & true_b).any()  # where the cells overlap, no edge is taken from the semantic model
    assert (b >= true_b).all()  # deep inside, the faint part is kept
    assert not (b & ~true_a & ~true_b).any()  # past the edge: the background it held is dropped
    np.testing.assert_array_equal(refined.cells.mask(2), lone)  # rejected as a whole: kept as detected
    assert refined.ids.tolist() == cells.ids.tolist() and refined.nuclei is cells.nuclei
    with pytest.raises(ValueError, match="foreground is"):
        redraw_cells(cells, foreground[:40])


class ShrunkCellDetector(OracleDetector):
    """The oracle with each cell a pixel short of its edge, as a coarse mask head draws them."""

    def predict_tile(self, tile, *, score_floor=0.05, max_detections=100):
        masks, scores, labels = super().predict_tile(tile, score_floor=score_floor, max_detections=max_detections)
        masks = np.array([ndimage.binary_erosion(m) if c == 0 else m for m, c in zip(masks, labels)])
        return masks.reshape(-1, *tile.shape), scores, labels


def test_detected_cells_are_refined_by_default_and_kept_as_detected_when_asked():
    def run(**options):
        detector = ShrunkCellDetector(sample)
        detector.grid = tile_grid(sample.shape, 512, 128)
        return segment_instances(sample.image, detector, estimate_scale=False, refine_nuclei=False, **options)

    sample = generate_smear((256, 256), n_cells=3, seed=2)
    truth = sample.cells
    as_detected, refined = run(refine_cells=False), run()
    assert as_detected.meta["refined_cells"] == {} and refined.meta["refined_cells"]["refined"] > 0
    assert refined.cell_ids.tolist() == as_detected.cell_ids.tolist()

    def error(result):  # pixels that differ from the true cells, each matched to its closest found cell
        found = result.cells.to_stack()
        return sum(min(int((c ^ t).sum()) for c in found) for t in truth.to_stack())

    assert len(as_detected) == len(truth)
    assert error(refined) < 0.7 * error(as_detected)
