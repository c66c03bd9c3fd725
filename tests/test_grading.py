"""Bethesda grading: nucleus-centred crops, matching CRIC points to detections, triage, and the one call
from a field to graded cells (analyze_field) with the shipped grader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from napari_cervix.classes import BETHESDA_GRADES, NOT_SQUAMOUS
from napari_cervix.field import TRIAGE_DECISIONS, triage
from napari_cervix.grading.cric_cells import OUTPUT_CLASSES, field_cells, match_points
from napari_cervix.grading.crops import nucleus_centres, nucleus_crops


def test_nucleus_crops_are_centred_windows_mirrored_at_the_edge():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    crops = nucleus_crops(image, np.array([[20.0, 25.0], [0.0, 0.0]]), window=8)
    assert crops.shape == (2, 3, 8, 8) and crops.dtype == np.float32
    np.testing.assert_allclose(crops[0].transpose(1, 2, 0), image[16:24, 21:29] / 255.0, atol=1e-6)
    # Centre (0, 0): rows -4..3 of a mirrored image: row -1 is row 0, row -4 is row 3.
    corner = crops[1].transpose(1, 2, 0) * 255
    np.testing.assert_allclose(corner[4:, 4:], image[:4, :4], atol=1e-3)
    np.testing.assert_allclose(corner[3, 4:], image[0, :4], atol=1e-3)
    np.testing.assert_allclose(corner[0, 4:], image[3, :4], atol=1e-3)


def test_nucleus_crops_refuse_a_centre_outside_the_image():
    with pytest.raises(ValueError, match="outside"):
        nucleus_crops(np.zeros((10, 10), np.uint8), np.array([[30.0, 5.0]]), window=4)


def _two_nuclei():
    labels = np.zeros((100, 100), np.int32)
    labels[10:20, 10:20] = 1
    labels[60:70, 60:70] = 2
    labels[90:94, 10:14] = 3  # far from every point below: not a squamous cell
    return labels


def test_points_match_the_nucleus_they_fall_on_or_near():
    labels = _two_nuclei()
    points = np.array([[15, 15], [22.5, 15], [40, 40], [65, 72]], float)  # on 1, 3 px from 1, nowhere, 3 px from 2
    np.testing.assert_array_equal(match_points(labels, points), [1, 1, 0, 2])


def test_field_cells_grade_a_detection_by_its_most_severe_point_and_mark_far_ones_not_squamous():
    labels = _two_nuclei()
    points = np.array([[15, 15], [16, 16], [65, 65], [40, 90]], float)
    cells = field_cells("f", labels, points, ["Negative for intraepithelial lesion", "HSIL", "LSIL", "ASC-US"])
    np.testing.assert_array_equal(cells.labels, [1, 2, 3])
    assert [OUTPUT_CLASSES[t] for t in cells.targets] == ["HSIL", "LSIL", NOT_SQUAMOUS]
    np.testing.assert_array_equal(cells.point_labels, [1, 1, 2, 0])  # the ASC-US point was missed
    np.testing.assert_allclose(cells.centres, nucleus_centres(labels, np.array([1, 2, 3])))
    np.testing.assert_allclose(cells.centres[0], [14.5, 14.5])


def _graded(classes, p_abnormal, reviewable):
    table = pd.DataFrame({"bethesda_class": classes, "p_abnormal": p_abnormal, "reviewable": reviewable})
    for c in ("ASC-H", "HSIL", "SCC"):
        table[f"p_{c}"] = [0.9 if g == c else 0.0 for g in classes]
    return table


def test_triage_follows_the_most_severe_reviewable_cell():
    negative = triage(_graded(["NILM", "NILM"], [0.1, 0.2], [False, False]))
    assert negative["decision"] == TRIAGE_DECISIONS[0] and negative["score"] == pytest.approx(0.2)
    low = triage(_graded(["NILM", "LSIL"], [0.1, 0.7], [False, True]))
    assert low["decision"] == TRIAGE_DECISIONS[1] and low["most_severe"] == "LSIL"
    high = triage(_graded(["HSIL", "LSIL", "SCC"], [0.9, 0.7, 0.4], [True, True, False]))
    assert high["decision"] == TRIAGE_DECISIONS[2] and high["most_severe"] == "HSIL" and high["reviewable_cells"] == 2
    assert triage(pd.DataFrame({"label": [1]}))["decision"] is None  # nothing graded: no decision


# ------------------------------------------------------------------------------ with the shipped grader
@pytest.fixture(scope="module")
def rgb_field():
    from napari_cervix.synth import generate_smear

    return generate_smear((384, 384), n_cells=6, seed=5, rgb=True).image


@pytest.fixture(scope="module")
def analyzed(rgb_field):
    from napari_cervix.field import analyze_field

    return analyze_field(rgb_field)


def test_analyze_field_grades_every_cell_with_a_nucleus(analyzed):
    from napari_cervix.cells.classifier import load_grader

    table, cells = analyzed.table, analyzed.cells
    assert len(table) == len(cells) > 0
    assert sorted(table["label"]) == sorted(int(i) for i in cells.ids)
    with_nucleus = table["nucleus_count"] > 0
    probabilities = table.loc[with_nucleus, [f"p_{c}" for c in BETHESDA_GRADES]].sum(axis=1)
    np.testing.assert_allclose(probabilities + 1 - table.loc[with_nucleus, "squamous_score"], 1.0, atol=1e-5)
    abnormal = table.loc[with_nucleus, [f"p_{c}" for c in BETHESDA_GRADES[1:]]].sum(axis=1)
    np.testing.assert_allclose(table.loc[with_nucleus, "p_abnormal"], abnormal, atol=1e-5)
    threshold = load_grader().threshold
    np.testing.assert_array_equal(
        table.loc[with_nucleus, "reviewable"], table.loc[with_nucleus, "p_abnormal"] >= threshold
    )
    flagged = table[table["reviewable"]]
    assert set(flagged["bethesda_class"].astype(str)) <= set(BETHESDA_GRADES[1:])  # class agrees with the flag
    assert table.loc[~with_nucleus, "p_abnormal"].isna().all() and not table.loc[~with_nucleus, "reviewable"].any()


def test_analyze_field_summary_counts_and_triage_match_the_table(analyzed):
    summary, table = analyzed.summary, analyzed.table
    assert summary["cells"] == len(table)
    for grade, count in summary["counts"].items():
        assert count == int((table["bethesda_class"].astype(str) == grade).sum())
    assert summary["triage"] == triage(table) == table.attrs["triage"]
    assert summary["grading_model"] == "bethesda-boost-rgb"


def test_the_grader_reads_the_nucleus_window_the_same_way_as_the_classify_step(rgb_field, analyzed):
    """classify_cells with the grader = the grade columns of analyze_field (one crop path)."""
    from napari_cervix.cells.classifier import load_grader
    from napari_cervix.cells.classify import classify_cells

    table = classify_cells(rgb_field, analyzed.cells, analyzed.nuclei, load_grader())
    graded = analyzed.table["nucleus_count"] > 0
    np.testing.assert_allclose(table.loc[graded, "p_reviewable"], analyzed.table.loc[graded, "p_abnormal"], atol=1e-6)


def test_gray_fields_get_measurements_and_a_clear_reason_instead_of_grades():
    from napari_cervix.field import analyze_field
    from napari_cervix.synth import generate_smear

    result = analyze_field(generate_smear((256, 256), n_cells=3, seed=1).image)
    assert "bethesda_class" not in result.table and len(result.table) == len(result.cells)
    assert "no grading model is registered as the default for gray images" in result.summary["grading"]
    assert result.summary["triage"]["decision"] is None


def test_analyze_field_refuses_bad_input_clearly():
    from napari_cervix.field import analyze_field
    from napari_cervix.imaging import ImageError

    with pytest.raises(ImageError):
        analyze_field(np.zeros((4, 4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="cells must be one of"):
        analyze_field(np.zeros((64, 64, 3), np.uint8), cells="watershed")


def test_cli_analyze_writes_labels_table_overlay_and_summary_for_a_field(tmp_path, rgb_field):
    import json

    import imageio.v3 as iio
    import tifffile

    from napari_cervix.cli import main

    iio.imwrite(tmp_path / "field.png", rgb_field)
    assert main(["analyze", str(tmp_path / "field.png"), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    table = pd.read_csv(out / "cells.csv")
    labels = tifffile.imread(out / "cells.tif")
    assert set(np.unique(labels)) - {0} <= set(table["label"]) and len(table) > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cells"] == len(table) and summary["triage"]["decision"] in TRIAGE_DECISIONS
    assert iio.imread(out / "overlay.png").shape == rgb_field.shape


# ------------------------------------------------------------------- the fusion grader (trees + CNN)
def _window_cells(count: int = 140, size: int = 32):
    """Nucleus-centred RGB windows of the 7 output classes (nucleus grows and darkens with the class) and
    their one-hot (cytoplasm, nucleus) masks."""
    from skimage.draw import disk

    rng = np.random.default_rng(0)
    targets = np.arange(count) % len(OUTPUT_CLASSES)
    crops = np.empty((count, 3, size, size), np.float32)
    masks = np.zeros((count, 2, size, size), np.float32)
    for i, k in enumerate(targets):
        image = np.full((size, size, 3), 0.9, np.float32)
        cell = np.zeros((size, size), bool)
        cell[disk((size / 2, size / 2), size * 0.45, shape=cell.shape)] = True
        nucleus = np.zeros_like(cell)
        nucleus[disk((size / 2, size / 2), 2 + k, shape=cell.shape)] = True
        image[cell] = (0.85, 0.6, 0.7)
        image[nucleus] = (0.45 - 0.04 * k, 0.3, 0.55)
        crops[i] = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1).transpose(2, 0, 1)
        masks[i, 0], masks[i, 1] = cell & ~nucleus, nucleus
    return crops, masks, targets


def test_fusion_grader_trains_saves_loads_and_grades_cached_parts_like_crops(tmp_path):
    """bethesda_fusion: trees + mask-fusion CNN; the CV's path (cached descriptors + resized windows,
    grade_parts → probabilities) gives what predict_proba gives on the full-size crops."""
    import torch.nn.functional as F

    from napari_cervix.cells.classifier import load_grader
    from napari_cervix.cells.descriptors import crop_descriptors, onehot_to_semantic
    from napari_cervix.grading.train import fit_grader, recipe

    crops, masks, targets = _window_cells()
    config = recipe(
        "bethesda_fusion",
        size=32,
        network_size=16,
        widths=(4, 8, 16),
        epochs=2,
        batch_size=32,
        device="cpu",
        boost_iterations=20,
        checkpoint_minutes=0.0,
    )
    small = [F.interpolate(torch.from_numpy(a), size=(16, 16), mode="area").numpy() for a in (crops, masks)]
    descriptors = crop_descriptors(crops, onehot_to_semantic(masks))
    grader = fit_grader(config, descriptors, targets, windows=small, log=lambda m: None)
    assert grader.network is not None and grader.boost is not None and grader.network_size == 16
    grader.metadata["calibration"] = {"slope": 0.8, "intercept": -0.5}
    path = tmp_path / "fusion.safetensors"
    grader.save(path)
    loaded = load_grader(str(path))
    assert loaded.arch == "bethesda_fusion" and loaded.classes == list(OUTPUT_CLASSES)
    proba = loaded.predict_proba(crops, masks)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    parts = loaded.kind.grade_parts(loaded, descriptors, *small)
    np.testing.assert_allclose(loaded.kind.probabilities(loaded, *parts), proba, atol=1e-5)
    # the abnormal logit mixes the trees' and the CNN's with the card's weight
    weight = loaded.model_config["cnn_weight"]
    trees_logit = loaded.boost.parts(descriptors)[1]
    assert 0 < weight < 1 and not np.allclose(parts[1], trees_logit)
    with pytest.raises(ValueError, match="windows"):
        fit_grader(config, descriptors, targets)


def test_a_cache_of_another_semantic_models_detections_is_refused(tmp_path):
    import json

    from napari_cervix.grading.train import check_detector
    from napari_cervix.registry import default_model

    check_detector(tmp_path)  # the first use stamps the cache with today's default
    stamp = json.loads((tmp_path / "detector.json").read_text())
    assert stamp == {"model": default_model("semantic", "rgb").name, "sha256": default_model("semantic", "rgb").sha256}
    check_detector(tmp_path)  # same model: accepted
    (tmp_path / "detector.json").write_text(json.dumps({"model": "unet-old", "sha256": "0" * 64}))
    with pytest.raises(ValueError, match="unet-old.*delete this one"):
        check_detector(tmp_path)


# ------------------------------------------------------------------- another lab's colors
def test_recoloring_scales_stains_and_light_and_leaves_the_image_alone_at_one(rgb_field):
    from napari_cervix.cells.crops import unit_intensity
    from napari_cervix.grading.recolor import Recoloring

    unit = unit_intensity(rgb_field)
    np.testing.assert_array_equal(Recoloring().on_image(rgb_field), rgb_field)
    np.testing.assert_allclose(Recoloring(light=(1.0, 0.9, 0.8))(unit), unit * [1.0, 0.9, 0.8], atol=1e-6)
    darker = Recoloring(hematoxylin=1.4)(unit)
    nuclei = unit.mean(axis=2) < np.quantile(unit.mean(axis=2), 0.05)  # the darkest pixels: nuclei
    assert darker[nuclei].mean() < unit[nuclei].mean() - 0.02
    assert darker.dtype == np.float32 and darker.min() >= 0 and darker.max() <= 1


def test_white_balance_gains_make_the_glass_white_again(rgb_field):
    from napari_cervix.grading.recolor import GAIN_LIMITS, Recoloring, white_balance_gains

    own = white_balance_gains(rgb_field)
    warm = white_balance_gains(Recoloring(light=(1.0, 0.9, 0.8)).on_image(rgb_field))
    np.testing.assert_allclose(warm / own, [1.0, 1 / 0.9, 1 / 0.8], rtol=0.02)
    # Glass seen through a strong filter is corrected up to the bound; a field without glass (one dark
    # clump) is left as it is.
    np.testing.assert_allclose(white_balance_gains(np.full((64, 64, 3), (250, 200, 150), np.uint8))[2], GAIN_LIMITS[1])
    np.testing.assert_allclose(white_balance_gains(np.full((64, 64, 3), 60, np.uint8)), 1.0)
    np.testing.assert_allclose(white_balance_gains(np.full((64, 64), 200, np.uint8)), 255 / 200, rtol=1e-5)  # gray


def test_a_white_balanced_grader_grades_the_field_scaled_by_its_glass(tmp_path, rgb_field, analyzed):
    """The card's ``white_balance`` reaches the crops: grading the field equals grading, without white
    balance, the field already scaled by its gains."""
    import copy

    from napari_cervix.cells.classifier import load_grader
    from napari_cervix.cells.classify import classify_cells
    from napari_cervix.cells.crops import unit_intensity
    from napari_cervix.cells.descriptors import crop_descriptors, onehot_to_semantic
    from napari_cervix.grading.recolor import white_balance_gains
    from napari_cervix.grading.train import fit_grader, recipe

    crops, masks, targets = _window_cells()
    config = recipe(size=32, boost_iterations=20, extra={"white_balance": True})
    grader = fit_grader(config, crop_descriptors(crops, onehot_to_semantic(masks)), targets, log=lambda m: None)
    grader.save(tmp_path / "wb.safetensors")
    balanced = load_grader(str(tmp_path / "wb.safetensors"))
    assert balanced.model_config["white_balance"] is True
    plain = copy.copy(balanced)
    plain.model_config = {**balanced.model_config, "white_balance": False}

    field = (unit_intensity(rgb_field) * [1.0, 0.92, 0.85]).astype(np.float32)  # a warmer lamp
    scaled = np.clip(field * white_balance_gains(field), 0, 1)
    cells, nuclei = analyzed.cells, analyzed.nuclei
    graded = classify_cells(field, cells, nuclei, balanced)["p_reviewable"]
    np.testing.assert_allclose(graded, classify_cells(scaled, cells, nuclei, plain)["p_reviewable"], atol=1e-6)
    assert not np.allclose(graded, classify_cells(field, cells, nuclei, plain)["p_reviewable"], atol=1e-3)


def test_training_copies_describe_the_same_detections_on_the_field_recolored(tmp_path, rgb_field, analyzed):
    """grading_inputs: the recipe's recolored copies keep each field's detections and targets, change its
    descriptors, are fixed per field and copy (cached), and training_pairs lists each field once per copy."""
    from napari_cervix.geometry import CYTOPLASM, NUCLEUS
    from napari_cervix.grading.train import grading_inputs, recipe, training_pairs
    from napari_cervix.io.sample import CellSample

    semantic = np.where(analyzed.cells.cell_labels() > 0, CYTOPLASM, 0)  # the field's cells and nuclei, so
    semantic[analyzed.nuclei > 0] = NUCLEUS  # no model runs here
    (tmp_path / "semantic").mkdir()
    np.savez_compressed(tmp_path / "semantic" / "f.npz", labels=semantic.astype(np.uint8))
    sample = CellSample(rgb_field, name="f", meta={"points": np.zeros((0, 2)), "bethesda": []})
    config = recipe(size=32, extra={"white_balance": True, "recolored_copies": 2})
    fields, descriptors, recolored = grading_inputs(config, [sample], tmp_path, log=lambda m: None)
    assert len(recolored) == 2 and len(fields[0].labels) == len(descriptors[0]) > 0
    for copy in recolored:
        assert copy[0].shape == descriptors[0].shape and not np.allclose(copy[0], descriptors[0])
    assert not np.allclose(recolored[0][0], recolored[1][0])
    np.testing.assert_array_equal(
        grading_inputs(config, [sample], tmp_path, log=lambda m: None)[2][1][0], recolored[1][0]
    )
    pairs = training_pairs(fields, descriptors, recolored, [0])
    assert [f.name for f, _ in pairs] == ["f"] * 3 and pairs[2][1] is recolored[1][0]


# ------------------------------------------------------------------- cells read in their field's context
def test_a_field_reference_is_the_median_of_its_larger_cells_shrunk_towards_the_typical_field():
    from napari_cervix.cells.descriptors import descriptor_names
    from napari_cervix.grading.context import TYPICAL_WEIGHT, field_reference, in_field_context, typical_reference

    width, cell = len(descriptor_names()), descriptor_names().index("cell_fraction")
    typical = np.zeros(width, np.float32)
    field = np.random.default_rng(0).normal(5, 1, (400, width)).astype(np.float32)
    field[:200, cell] = 0.05  # leukocytes: little or no cytoplasm; their other descriptors far off too
    field[:200, :cell] += 50
    reference = field_reference(field, typical, "large_cells")
    np.testing.assert_allclose(reference, np.median(field[200:], 0) * 200 / (200 + TYPICAL_WEIGHT), rtol=1e-5)
    # a lone cell is not its own reference: mostly the typical field's
    lone = np.full((1, width), 8.0, np.float32)
    np.testing.assert_allclose(field_reference(lone, typical), 8.0 / (1 + TYPICAL_WEIGHT), rtol=1e-6)
    features = in_field_context(field, typical, "large_cells")
    assert features.shape == (400, 2 * width)
    np.testing.assert_allclose(features[:, :width], field)
    np.testing.assert_allclose(features[:, width:], field - reference, atol=1e-4)
    fields = [np.full((n, width), v, np.float32) for n, v in ((2, 1.0), (50, 3.0), (9, 10.0))]
    np.testing.assert_allclose(typical_reference([*fields, np.zeros((0, width))]), 3.0)  # each field counts once
    with pytest.raises(ValueError, match="no field"):
        typical_reference([np.zeros((0, width))])


def test_the_intermediate_reference_is_not_pulled_by_a_field_full_of_enlarged_nuclei():
    """A field of normal cells and as many abnormal ones (enlarged nuclei: higher N/C, darker): the large-cell
    median lands between them, the intermediate reference stays on the normal cells."""
    from napari_cervix.cells.descriptors import descriptor_names
    from napari_cervix.grading.context import field_reference, reference_name

    names = descriptor_names()
    width, cell, ratio = len(names), names.index("cell_fraction"), names.index("nc_ratio")
    rng = np.random.default_rng(1)
    field = rng.normal(0, 0.01, (300, width)).astype(np.float32)
    field[:, cell] = 0.6  # every detection a large squamous cell
    field[:150, ratio] += 0.1  # normal: small N/C …
    field[150:, ratio] += 0.4  # … abnormal: enlarged nuclei, their other descriptors moved too
    field[150:, :cell] += 1.0
    typical = np.median(field[:150], axis=0)
    normal = np.median(field[:150], axis=0)
    intermediate = field_reference(field, typical, "intermediate")
    large = field_reference(field, typical, "large_cells")
    assert np.abs(intermediate[:cell] - normal[:cell]).max() < 0.05
    assert np.abs(large[:cell] - normal[:cell]).min() > 0.3
    assert abs(intermediate[ratio] - 0.1) < 0.02 and large[ratio] > 0.2
    # cards: session 19's graders say True (their reference was the large cells); False/None: no context
    assert reference_name(True) == "large_cells" and reference_name("intermediate") == "intermediate"
    assert reference_name(False) is None and reference_name(None) is None
    with pytest.raises(ValueError, match="unknown field reference"):
        reference_name("smallest")


def _context_grader(tmp_path, **extra):
    """A grader with field context, trained on 7 fields of synthetic windows whose stain is scaled per field
    (absolute colors mislead across fields, relative ones do not); ``extra``: more of the recipe's extra."""
    from napari_cervix.cells.classifier import load_grader
    from napari_cervix.cells.descriptors import crop_descriptors, onehot_to_semantic
    from napari_cervix.grading.cric_cells import FieldCells
    from napari_cervix.grading.train import fit_on_fields, recipe

    crops, masks, targets = _window_cells()
    pairs = []
    for f in range(7):
        keep = np.arange(f, len(targets), 7)
        scaled = np.clip(crops[keep] * (0.75 + 0.07 * f), 0, 1)
        empty = np.zeros(0, np.int64)
        field = FieldCells(f"f{f}", keep + 1, np.zeros((len(keep), 2)), targets[keep], empty, empty, np.zeros((0, 2)))
        pairs.append((field, crop_descriptors(scaled, onehot_to_semantic(masks[keep]))))
    config = recipe(size=32, boost_iterations=20, extra={"field_context": "intermediate", **extra})
    grader, y = fit_on_fields(config, pairs, log=lambda m: None)
    assert len(y) == len(targets) and grader.model_config["field_context"] == "intermediate"
    grader.save(tmp_path / "context.safetensors")
    loaded = load_grader(str(tmp_path / "context.safetensors"))
    np.testing.assert_array_equal(loaded.boost.typical, grader.boost.typical)
    return loaded, crops, masks


def test_a_grader_with_field_context_reads_a_cell_by_the_others_of_its_field(tmp_path):
    grader, crops, masks = _context_grader(tmp_path)
    alone = grader.predict_proba(crops[:14], masks[:14])
    np.testing.assert_allclose(alone.sum(1), 1, atol=1e-5)
    darker = np.concatenate([crops[:14], np.repeat(crops[6:7] * 0.6, 60, axis=0)])  # among many dark nuclei
    among = grader.predict_proba(darker, np.concatenate([masks[:14], np.repeat(masks[6:7], 60, axis=0)]))[:14]
    assert np.abs(among - alone).max() > 1e-3


def test_the_linear_score_normalizes_features_as_scikit_learn_and_mixes_into_the_abnormal_logit(tmp_path):
    """A grader with a linear abnormal score beside its trees (grading/linear.py): saved and loaded, its
    abnormal logit is the card's weighted mean of the trees' and the linear model's; the rank
    normalization is scikit-learn's QuantileTransformer's, missing values at the median."""
    from sklearn.preprocessing import QuantileTransformer

    from napari_cervix.cells.descriptors import crop_descriptors, onehot_to_semantic
    from napari_cervix.grading.linear import LinearScore

    grader, crops, masks = _context_grader(tmp_path, linear_weight=0.5)
    assert grader.model_config["linear_weight"] == 0.5 and grader.boost.linear is not None
    descriptors = crop_descriptors(crops, onehot_to_semantic(masks))
    features = grader.boost.features(descriptors, "intermediate")
    trees = grader.boost.abnormal.raw_scores(features)[:, 0]
    linear = grader.boost.linear.logit(features)
    parts = grader.kind.grade_parts(grader, descriptors)
    np.testing.assert_allclose(parts[1], 0.5 * trees + 0.5 * linear, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="linear_weight"):
        grader.boost.parts(descriptors, "intermediate")
    # the synthetic abnormal nuclei are larger and darker: the linear model alone ranks them above the rest
    abnormal = np.isin(np.arange(len(crops)) % len(OUTPUT_CLASSES), [1, 2, 3, 4, 5])
    assert linear[abnormal].mean() > linear[~abnormal].mean() + 1
    # a grader without the linear score (before session 22) reads the trees alone
    plain = _context_grader(tmp_path)[0]
    assert plain.boost.linear is None and plain.model_config["linear_weight"] == 0.0

    rng = np.random.default_rng(1)
    x = np.c_[rng.exponential(size=300), rng.integers(0, 3, 300).astype(float), rng.normal(size=300)]
    fitted = QuantileTransformer(n_quantiles=40, output_distribution="normal").fit(x)
    score = LinearScore(fitted.quantiles_, fitted.references_, np.zeros(3), 0.0)
    probe = np.r_[x[:50], [[-5.0, 7.0, 100.0]], [[np.nan, 1.0, 0.0]]]
    expected = np.nan_to_num(fitted.transform(probe), nan=0.0)
    np.testing.assert_allclose(score.normalized(probe), expected, atol=1e-8)


def test_classify_cells_grades_all_of_an_image_as_one_field_whatever_its_batches(
    tmp_path, monkeypatch, rgb_field, analyzed
):
    """The field context is the whole image's cells, not a batch's: batches of 2 give what one batch gives."""
    from napari_cervix.cells import classify

    grader = _context_grader(tmp_path)[0]
    whole = classify.classify_cells(rgb_field, analyzed.cells, analyzed.nuclei, grader)
    monkeypatch.setattr(classify, "BATCH", 2)
    steps = []
    batched = classify.classify_cells(rgb_field, analyzed.cells, analyzed.nuclei, grader, progress=steps.append)
    assert len(analyzed.cells) > 2 and len(steps) > 2  # progress per batch
    np.testing.assert_allclose(batched["p_reviewable"], whole["p_reviewable"], atol=1e-6)
