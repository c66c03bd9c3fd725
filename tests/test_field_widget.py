"""The "Analyze field" dock widget in a real napari viewer (run under xvfb-run)."""

import numpy as np
import pytest

from napari_cervix.field import SEVERITY_COLORS, analyze_field
from napari_cervix.synth import generate_smear

pytestmark = pytest.mark.gui


def test_analyze_field_widget_adds_graded_layers_with_the_table_as_features(make_napari_viewer, qtbot):
    from napari_cervix._widgets.field import FieldWidget

    image = generate_smear((320, 320), n_cells=5, seed=7, rgb=True).image
    viewer = make_napari_viewer()
    layer = viewer.add_image(image, name="field", rgb=True, scale=(0.5, 0.5))
    before = image.copy()
    widget = FieldWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.value = layer
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=240_000)

    # The widget calls the console function, the layer's scale read as µm per pixel: the same table.
    expected = analyze_field(image, pixel_size_um=0.5)
    assert expected.summary["scale"]["source"] == "given"
    labels = viewer.layers["field graded cell labels"]
    features = labels.features
    assert list(features["label"]) == list(range(len(features)))  # row i = label i
    graded = features.dropna(subset=["bethesda_class"])
    np.testing.assert_allclose(
        graded.set_index("label")["p_abnormal"].sort_index(),
        expected.table.dropna(subset=["p_abnormal"]).set_index("label")["p_abnormal"].sort_index(),
        atol=1e-6,
    )
    assert labels.scale[-1] == 0.5 and labels.metadata["summary"]["triage"] == expected.summary["triage"]
    outlines = viewer.layers["field graded cells"]
    by_id = dict(zip(expected.table["label"], expected.table["bethesda_class"].astype(str)))
    for cell_id, color in zip(outlines.features["cell_id"], outlines.edge_color):
        grade = by_id.get(int(cell_id))
        if grade in SEVERITY_COLORS:
            np.testing.assert_allclose(color[:3], SEVERITY_COLORS[grade], atol=1e-6)
    assert "triage" in widget.status.value
    np.testing.assert_array_equal(layer.data, before)  # the user's image is untouched


def test_analyze_field_widget_without_an_image_says_so(make_napari_viewer):
    from napari_cervix._widgets.field import FieldWidget

    viewer = make_napari_viewer()
    widget = FieldWidget(viewer)
    widget.run()
    assert widget._worker is None and len(viewer.layers) == 0
