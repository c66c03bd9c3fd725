"""The "Review cells" dock widget in a real napari viewer (run under xvfb-run)."""

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt

from napari_cervix.review import DecisionLog
from napari_cervix.synth import generate_smear
from napari_cervix.tables import features_for_layer

pytestmark = pytest.mark.gui


@pytest.fixture
def reviewed_viewer(make_napari_viewer):
    """A viewer with a smear (scale 0.5 µm, shifted) and its cells layer carrying a classification table."""
    sample = generate_smear((256, 320), n_cells=6, seed=3, rgb=True)
    labels = sample.cells.cell_labels()
    present = [int(k) for k in np.unique(labels) if k]
    centroids = [np.argwhere(labels == k).mean(axis=0) for k in present]
    table = pd.DataFrame(
        {
            "label": present,
            "centroid_y": [c[0] for c in centroids],
            "centroid_x": [c[1] for c in centroids],
            "predicted_class": ["HSIL" if k % 2 else "NILM" for k in present],
            "p_reviewable": np.linspace(0.2, 0.9, len(present)),
            "reviewable": np.linspace(0.2, 0.9, len(present)) > 0.5,
        }
    )
    viewer = make_napari_viewer()
    viewer.add_image(sample.image, name="smear", rgb=True, scale=(0.5, 0.5), translate=(10, 20))
    cells = viewer.add_labels(labels, name="cells", scale=(0.5, 0.5), translate=(10, 20))
    cells.features = features_for_layer(table, None, int(labels.max()) + 1)
    return viewer, table


def open_widget(viewer, qtbot, decisions):
    from napari_cervix._widgets.review import ReviewWidget

    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.value = viewer.layers["smear"]
    widget.cells.value = viewer.layers["cells"]
    widget.decisions_file.value = decisions
    widget.load()
    qtbot.waitUntil(lambda: widget.gallery.count() > 0, timeout=30_000)
    return widget


def test_click_centres_the_camera_on_the_cell(reviewed_viewer, qtbot, tmp_path):
    viewer, table = reviewed_viewer
    widget = open_widget(viewer, qtbot, tmp_path / "decisions.jsonl")
    assert widget.gallery.count() == len(table)
    first = table.sort_values("p_reviewable", ascending=False).iloc[0]
    assert widget.gallery.item(0).text().startswith(str(int(first.label)))
    item = widget.gallery.item(0)
    qtbot.mouseClick(
        widget.gallery.viewport(), Qt.MouseButton.LeftButton, pos=widget.gallery.visualItemRect(item).center()
    )
    expected = (10 + 0.5 * first.centroid_y, 20 + 0.5 * first.centroid_x)
    np.testing.assert_allclose(viewer.camera.center[-2:], expected, atol=1e-6)
    assert viewer.layers["review: current cell"].data[0] == pytest.approx(expected)


def test_decisions_come_back_after_closing_and_reopening(reviewed_viewer, qtbot, tmp_path):
    viewer, table = reviewed_viewer
    decisions = tmp_path / "decisions.jsonl"
    widget = open_widget(viewer, qtbot, decisions)
    widget.go_to(0)
    qtbot.keyClick(widget.gallery, Qt.Key.Key_5)  # accept as HSIL, move on
    qtbot.keyClick(widget.gallery, Qt.Key.Key_R)  # reject the second
    first, second = (int(widget.gallery.item(i).data(Qt.ItemDataRole.UserRole)) for i in (0, 1))
    saved = DecisionLog(decisions).load()
    assert len(saved) == 2
    viewer.window.remove_dock_widget(widget.native)
    widget.close()
    original = viewer.layers["cells"].features.drop(columns=["review_decision", "reviewed_class", "reviewed_at"])
    viewer.layers["cells"].features = original  # the decisions must come from the file
    reopened = open_widget(viewer, qtbot, decisions)
    features = reopened.table()
    assert features.iloc[first]["review_decision"] == "accept" and features.iloc[first]["reviewed_class"] == "HSIL"
    assert features.iloc[second]["review_decision"] == "reject"
    model_columns = ["label", "predicted_class", "p_reviewable"]
    pd.testing.assert_frame_equal(features[model_columns], original[model_columns])
    assert "2 reviewed" in reopened.summary.value


def test_slide_results_open_as_multiscale_slide_and_cell_points(make_napari_viewer, qtbot, tmp_path):
    import json

    from napari_cervix._widgets.review import ReviewWidget
    from napari_cervix.io.slides import write_ome_tiff

    image = np.zeros((2048, 1536, 3), np.uint8)
    image[:] = 230
    slide = write_ome_tiff(tmp_path / "slide.ome.tif", image, pixel_size_um=0.5)
    out = tmp_path / "results"
    out.mkdir()
    settings = {"instance_model": "imbmdcr-lite", "classifier": "default"}
    (out / "run.json").write_text(json.dumps({"fingerprint": {"slide": str(slide), "settings": settings}}))
    table = pd.DataFrame(
        {
            "label": [1, 2, 3],
            "centroid_y": [100.0, 1500.0, 900.0],
            "centroid_x": [200.0, 1200.0, 50.0],
            "predicted_class": ["NILM", "HSIL", "LSIL"],
            "p_reviewable": [0.1, 0.9, 0.5],
        }
    )
    table.to_parquet(out / "cells.parquet")
    viewer = make_napari_viewer()
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.results_folder.value = out
    widget.open_results()
    qtbot.waitUntil(lambda: widget.gallery.count() == 3, timeout=30_000)
    assert viewer.layers["slide.ome.tif"].multiscale
    points = viewer.layers["slide.ome.tif cells"]
    assert list(points.features["label"]) == [1, 2, 3]
    assert widget.decisions_file.value == out / "review.jsonl"
    widget.go_to(0)  # the most suspicious: cell 2
    np.testing.assert_allclose(viewer.camera.center[-2:], (750.0, 600.0))
    widget.report_path.value = tmp_path / "report.html"
    widget.write_report()
    assert "imbmdcr-lite" in (tmp_path / "report.html").read_text()
