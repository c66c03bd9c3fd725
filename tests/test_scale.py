"""Pixel size: running models at their training scale (napari_cervix.scale and its use by the pipelines)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from napari_cervix.cellset import CellSet
from napari_cervix.scale import DEAD_BAND, Scale, estimate_factor, for_model, plan_scale, resample, resize_labels

RADIUS = 8  # px: the "training" nucleus of the synthetic tests
REFERENCE = float(np.pi * RADIUS**2)


def _nuclei_image(radius: float = RADIUS, side: int = 320, seed: int = 0) -> np.ndarray:
    """Dark disks on a bright field, on a grid with jittered centres (float32 in [0, 1])."""
    rng = np.random.default_rng(seed)
    image = np.ones((side, side), np.float32)
    step = int(4 * radius)
    for y in range(step // 2, side - step // 2, step):
        for x in range(step // 2, side - step // 2, step):
            rr, cc = disk((y + rng.integers(-2, 3), x + rng.integers(-2, 3)), radius, shape=image.shape)
            image[rr, cc] = 0.2
    return image


def _threshold(image: np.ndarray) -> np.ndarray:
    return image < 0.5


def _fragmenting(image: np.ndarray) -> np.ndarray:
    """Like a network shown nuclei far larger than in training: big nuclei come out in fragments."""
    mask = _threshold(image)
    from napari_cervix.geometry import label_components

    labels = label_components(mask)
    big = np.isin(labels, np.flatnonzero(np.bincount(labels.ravel()) > 2.5 * REFERENCE)) & (labels > 0)
    grid = np.zeros_like(mask)
    grid[::10, :] = grid[:, ::10] = True
    return mask & ~(big & grid)


@pytest.mark.parametrize("magnification", [0.6, 1.0, 2.5])
def test_the_estimate_undoes_a_magnification(magnification):
    image = resample(_nuclei_image(), magnification)
    factor, area, probes = estimate_factor(image, _threshold, REFERENCE)
    assert factor == pytest.approx(1 / magnification, rel=0.12)
    assert area is not None and 1.0 in probes


def test_the_estimate_is_not_fooled_by_fragmented_large_nuclei():
    image = resample(_nuclei_image(), 2.5)
    # At the image's own scale the fragments look like small nuclei (an estimate > 1, "enlarge") ...
    own = estimate_factor(image, _fragmenting, REFERENCE)[2][1.0]
    assert own > 1
    # ... but a shrinking probe sees whole nuclei of the known size, and wins.
    factor, _, _ = estimate_factor(image, _fragmenting, REFERENCE)
    assert factor == pytest.approx(0.4, rel=0.12)


def test_a_far_shrunk_probe_with_a_few_clusters_left_does_not_win():
    """Small nuclei (the field at 0.75× of training) and six dark clusters: shrunk to a quarter, the nuclei
    become specks and the clusters alone look like nuclei of the known size, a self-consistent but wrong
    estimate; that probe found a sliver of the nuclei the other probes found, so it cannot win."""
    image = _nuclei_image(radius=RADIUS * 0.75, side=480)
    for y in (80, 240, 400):
        for x in (120, 360):
            rr, cc = disk((y, x), 4 * RADIUS, shape=image.shape)
            image[rr, cc] = 0.2
    factor, _, probes = estimate_factor(image, _threshold, REFERENCE)
    assert probes[0.25] == pytest.approx(0.25, rel=0.15)  # the clusters alone: consistent with themselves
    assert factor == pytest.approx(1 / 0.75, rel=0.12)


def _clumps_read_as_nuclei_when_small(image: np.ndarray) -> np.ndarray:
    """Like the network on a generated gray field: dark nuclei, and pale clumps of cells read as nuclei once
    they are shrunk to a nucleus's size (at most twice the training nucleus's area in the probe's pixels)."""
    from napari_cervix.geometry import label_components

    pale = label_components(image < 0.8)
    nucleus_sized = np.bincount(pale.ravel()) <= 2 * REFERENCE
    nucleus_sized[0] = False
    return _threshold(image) | nucleus_sized[pale]


def test_probes_after_the_nuclei_vanished_do_not_win():
    """A field at about the training scale (nuclei of 0.85× the training radius) with pale clumps of cells:
    the nuclei vanish below the speck size in the 0.4 probe, and in the quarter probe the clumps alone look
    like nuclei of the known size — self-consistent, and numerous enough to pass the count rule. The nuclei's
    cover fell to nothing on the way, so neither shrunk probe can win."""
    image = np.ones((640, 640), np.float32)
    for y in range(24, 300, 40):
        for x in range(24, 620, 40):
            rr, cc = disk((y, x), RADIUS * 0.85, shape=image.shape)
            image[rr, cc] = 0.2
    for y in range(360, 620, 80):
        for x in range(40, 620, 80):
            rr, cc = disk((y, x), 4 * RADIUS, shape=image.shape)
            image[rr, cc] = 0.65
    factor, _, probes = estimate_factor(image, _clumps_read_as_nuclei_when_small, REFERENCE)
    assert probes[0.4] is None and probes[0.25] == pytest.approx(0.25, rel=0.1)  # the clumps' own estimate
    assert factor == pytest.approx(1 / 0.85, rel=0.12)


def test_a_given_pixel_size_sets_the_factor_exactly_and_bad_ones_are_refused():
    scale = plan_scale(None, 0.25, REFERENCE, None, pixel_size_um=0.5)
    assert (scale.factor, scale.source, scale.pixel_size_um) == (2.0, "given", 0.5)
    # A factor inside the estimate's dead band is applied when given (the user said so), a sub-pixel one not ...
    assert plan_scale(None, 0.25, REFERENCE, None, pixel_size_um=0.3).factor == pytest.approx(1.2)
    assert plan_scale(None, 0.25, REFERENCE, None, pixel_size_um=0.26).factor == 1.0
    # ... and a model without a recorded pixel size runs the image as it is.
    assert plan_scale(None, None, None, None, pixel_size_um=0.5).factor == 1.0
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="pixel_size_um"):
            plan_scale(None, 0.25, REFERENCE, None, pixel_size_um=bad)


def test_estimates_near_one_are_not_applied_but_reported():
    image = resample(_nuclei_image(), 1.1)
    scale = plan_scale(image, 0.25, REFERENCE, _threshold)
    assert DEAD_BAND[0] <= scale.estimated_factor <= DEAD_BAND[1]
    assert scale.factor == 1.0 and not scale.resamples and scale.source == "estimated"
    assert scale.pixel_size_um == pytest.approx(0.25 * scale.estimated_factor)
    off = plan_scale(image, 0.25, REFERENCE, _threshold, estimate=False)
    assert (off.factor, off.source) == (1.0, "off")
    # Too few nuclei say nothing: run as it is.
    assert plan_scale(np.ones((64, 64), np.float32), 0.25, REFERENCE, _threshold).source == "model"


def test_an_image_scale_carries_over_to_another_model():
    estimated = Scale(1.0, "estimated", 0.3, 1.2, 200.0)
    other = for_model(estimated, 0.15)
    assert other.factor == pytest.approx(2.0) and other.source == "estimated"
    assert for_model(Scale(0.5, "given", 0.5), 0.25).factor == pytest.approx(2.0)
    assert for_model(Scale(), 0.25).factor == 1.0


def test_cells_resized_keep_ids_links_and_shape():
    shape = (100, 120)
    cells = np.zeros(shape, np.int32)
    cells[disk((40, 40), 25, shape=shape)] = 3
    cells[disk((60, 80), 20, shape=shape)] = 7
    nuclei = np.zeros(shape, bool)
    nuclei[disk((40, 40), 6, shape=shape)] = nuclei[disk((60, 85), 5, shape=shape)] = True
    cell_set = CellSet.from_labels(cells, nuclei)
    big = cell_set.resized((200, 240))
    assert big.shape == (200, 240)
    assert big.ids.tolist() == cell_set.ids.tolist()
    assert big.nucleus_cell_ids.tolist() == cell_set.nucleus_cell_ids.tolist()
    np.testing.assert_allclose(big.areas, 4 * cell_set.areas, rtol=0.05)
    back = big.resized(shape)
    for k in range(len(cell_set)):
        a, b = cell_set.cells.mask(k), back.cells.mask(k)
        assert (a & b).sum() / (a | b).sum() > 0.9


def test_labels_resize_by_nearest_neighbour():
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    big = resize_labels(labels, (4, 4))
    assert set(np.unique(big)) == {0, 1, 2, 3} and big.dtype == np.uint8 and big[3, 3] == 3


# ------------------------------------------------------------------ the pipelines at the models' pixel size


def _magnified_smear(rgb: bool, factor: float = 2.0):
    from napari_cervix.synth import generate_smear

    sample = generate_smear((256, 256), seed=3, rgb=rgb)
    return sample.image, resample(sample.image, factor)


def _iou(a, b) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_segment_semantic_runs_a_magnified_image_at_the_model_pixel_size():
    from napari_cervix.semantic.inference import load_semantic_model, segment_semantic

    image, big = _magnified_smear(rgb=False)
    loaded = load_semantic_model("default", "gray")
    pixel = loaded.card.input.pixel_size_um
    native = segment_semantic(image, loaded, estimate_scale=False)
    labels, probs, scale = segment_semantic(
        big, loaded, pixel_size_um=pixel / 2, return_probabilities=True, return_scale=True
    )
    assert labels.shape == big.shape and probs.shape == (3, *big.shape)
    assert (scale.factor, scale.source) == (pytest.approx(0.5), "given")
    back = resize_labels(labels, native.shape)
    assert _iou(back == 2, native == 2) > 0.8  # the same nuclei as at the model's own scale
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-3)


def test_analyze_field_maps_cells_and_measurements_back_to_the_input_grid():
    from napari_cervix.field import analyze_field
    from napari_cervix.semantic.inference import load_semantic_model

    image, big = _magnified_smear(rgb=True)
    pixel = load_semantic_model("default", "rgb").card.input.pixel_size_um
    native = analyze_field(image, pixel_size_um=pixel)
    result = analyze_field(big, pixel_size_um=pixel / 2)
    assert result.summary["scale"]["factor"] == pytest.approx(0.5)
    assert result.cells.shape == result.nuclei.shape == big.shape[:2]
    assert len(result.table) == len(result.cells) and abs(len(result.cells) - len(native.cells)) <= 2
    # Measurements are in the input's pixels: areas four times those found on the unmagnified field.
    ratio = result.table["cell_area"].sum() / native.table["cell_area"].sum()
    assert 3.4 < ratio < 4.6
    assert result.table["centroid_y"].max() < big.shape[0] and "bethesda_class" in result.table


def test_cli_segment_semantic_reports_the_scale(tmp_path, capsys):
    import tifffile

    from napari_cervix.cli import main
    from napari_cervix.semantic.inference import load_semantic_model

    _, big = _magnified_smear(rgb=False)
    tifffile.imwrite(tmp_path / "big.tif", big)
    pixel = load_semantic_model("default", "gray").card.input.pixel_size_um
    code = main(
        ["segment", "semantic", str(tmp_path / "big.tif"), "--out", str(tmp_path), "--pixel-size", str(pixel / 2)]
    )
    assert code == 0
    assert "given; resampled ×0.50" in capsys.readouterr().out
    assert tifffile.imread(tmp_path / "big_semantic.tif").shape == big.shape
    assert main(["segment", "semantic", str(tmp_path / "big.tif"), "--out", str(tmp_path), "--pixel-size", "-1"]) == 2


def test_widgets_take_the_pixel_size_from_the_box_or_the_layer_scale():
    from napari.layers import Image

    from napari_cervix._widgets._common import pixel_size_box, pixel_size_of

    box = pixel_size_box()
    assert pixel_size_of(Image(np.zeros((8, 8)), scale=(0.3, 0.3)), box) == pytest.approx(0.3)
    assert pixel_size_of(Image(np.zeros((8, 8))), box) is None  # napari's default scale: not set
    box.value = 0.5
    assert pixel_size_of(Image(np.zeros((8, 8)), scale=(0.3, 0.3)), box) == pytest.approx(0.5)
