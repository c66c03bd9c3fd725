"""Bethesda grading: nucleus-centred crops, matching CRIC points to detections, triage, and the one call
from a field to graded cells (analyze_field) with the shipped grader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
