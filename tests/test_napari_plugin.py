"""The plugin inside a real napari viewer (run under xvfb-run: vispy needs OpenGL)."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari_cervix._widgets.semantic import SemanticWidget  # noqa: E402


def test_manifest_validates():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-cervix")
    manifest.validate_imports()
    names = {w.display_name for w in manifest.contributions.widgets}
    assert {"Segment nucleus and cytoplasm", "Segment overlapping cells", "Classify cells"} <= names


def test_sample_data_opens_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cervix", "smear")
    # the ground truth comes as the same linked layers as a prediction or a read file
    assert [(layer.name, type(layer).__name__) for layer in viewer.layers] == [
        ("synthetic smear", "Image"),
        ("ground truth cell labels", "Labels"),
        ("ground truth nuclei", "Labels"),
        ("ground truth cells", "Shapes"),
    ]
    image = viewer.layers["synthetic smear"]
    assert image.data.ndim == 2 and image.data.dtype == np.uint8
    outlines = viewer.layers["ground truth cells"]
    assert len(outlines.data) == len(outlines.metadata["cell_set"]) >= 2
    nuclei = viewer.layers["ground truth nuclei"].data
    assert set(np.unique(nuclei)) - {0} == set(outlines.features["cell_id"])  # nucleus id = its cell's id


@pytest.mark.parametrize(
    "display_name", ["Segment nucleus and cytoplasm", "Segment overlapping cells", "Classify cells", "Review cells"]
)
def test_every_widget_docks(make_napari_viewer, display_name):
    viewer = make_napari_viewer()
    widget, _ = viewer.window.add_plugin_dock_widget("napari-cervix", display_name)
    assert widget is not None


def _semantic_widget(viewer, weights):
    widget = SemanticWidget(viewer)
    widget.model.value = "file…"
    widget.model_file.value = weights
    widget.tile_size.value = 64
    widget.overlap.value = 16
    return widget


def test_semantic_widget_adds_labels_and_keeps_input(make_napari_viewer, qtbot, tiny_semantic_weights):
    viewer = make_napari_viewer()
    data = np.random.default_rng(0).integers(0, 255, (150, 120), dtype=np.uint8)
    layer = viewer.add_image(data.copy(), name="smear", scale=(0.5, 0.5))
    widget = _semantic_widget(viewer, tiny_semantic_weights)
    widget.probabilities.value = True
    assert widget.image.value is layer
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60000)
    labels = viewer.layers["smear semantic"]
    assert labels.data.shape == data.shape and set(np.unique(labels.data)) <= {0, 1, 2}
    assert list(labels.features["class"]) == ["background", "cytoplasm", "nucleus"]
    assert tuple(labels.scale) == (0.5, 0.5)
    assert "smear P(nucleus)" in viewer.layers
    np.testing.assert_array_equal(layer.data, data)
    assert "background" in widget.status.value


def test_semantic_widget_cancel_adds_nothing(make_napari_viewer, qtbot, tiny_semantic_weights):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(1).integers(0, 255, (1200, 1200), dtype=np.uint8), name="big")
    widget = _semantic_widget(viewer, tiny_semantic_weights)
    widget.run()
    assert widget.cancel_button.enabled
    widget.cancel()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60000)
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert widget.run_button.enabled


@pytest.mark.parametrize("widget_class", ["semantic:SemanticWidget", "instances:InstanceWidget"])
def test_segment_widgets_without_image_explain(make_napari_viewer, monkeypatch, widget_class):
    import importlib

    module, name = widget_class.split(":")
    cls = getattr(importlib.import_module(f"napari_cervix._widgets.{module}"), name)
    viewer = make_napari_viewer()
    messages = []
    monkeypatch.setattr("napari_cervix._widgets._worker.show_error", messages.append)
    cls(viewer).run()
    assert messages and "choose an image layer" in messages[0]
    assert len(viewer.layers) == 0


def test_semantic_widget_bad_image_reports_error_and_keeps_layers(
    make_napari_viewer, qtbot, monkeypatch, tiny_semantic_weights
):
    viewer = make_napari_viewer()
    bad = np.full((64, 64), np.nan, np.float32)
    viewer.add_image(bad, name="nan")
    errors = []
    monkeypatch.setattr("napari_cervix._widgets._worker.show_error", errors.append)
    widget = _semantic_widget(viewer, tiny_semantic_weights)
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60000)
    assert errors and "NaN" in errors[0]
    assert [layer.name for layer in viewer.layers] == ["nan"]
