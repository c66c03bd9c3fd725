"""The "Segment overlapping cells" dock widget in a real napari viewer (run under xvfb-run)."""

import numpy as np
import pytest

from napari_cervix.instances.model import InstancesUnavailable, require_backend
from napari_cervix.synth import generate_smear

pytestmark = pytest.mark.gui


def _wait_for(qtbot, widget, timeout=240_000):
    qtbot.waitUntil(lambda: widget._worker is None, timeout=timeout)


def test_widget_adds_linked_layers(make_napari_viewer, qtbot):
    try:
        require_backend("auto")  # the backend the widget runs: torch + torchvision, no mmdet needed
    except InstancesUnavailable as err:
        pytest.skip(f"the instance model's default backend cannot run: {err}")
    from napari_cervix._widgets.instances import InstanceWidget
    from napari_cervix.registry import list_models

    assert list_models("instances"), "the package ships an instances model; the registry lost it"
    viewer = make_napari_viewer()
    sample = generate_smear((512, 512), n_cells=(4, 6), seed=7)
    # The layer's scale is the image's µm per pixel: here the instance model's own, so it runs as it is.
    pixel = list_models("instances")[0].card.input.pixel_size_um
    viewer.add_image(sample.image, name="smear", scale=(pixel, pixel))
    widget = InstanceWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.value = viewer.layers["smear"]
    widget.run()
    _wait_for(qtbot, widget)
    names = [layer.name for layer in viewer.layers]
    assert names == ["smear", "smear cell labels", "smear nuclei", "smear cells"]
    shapes = viewer.layers["smear cells"]
    cell_set = shapes.metadata["cell_set"]
    assert cell_set.shape == (512, 512) and len(cell_set) >= 1
    cells = cell_set.to_stack()
    features = shapes.features
    assert list(features.columns[:4]) == ["cell_id", "score", "area", "class"]
    assert np.all(features["score"] >= 0.5)
    labels = viewer.layers["smear cell labels"].data
    assert set(np.unique(labels)) - {0} <= set(features["cell_id"])
    nuclei = viewer.layers["smear nuclei"].data
    assert nuclei.max() >= 1
    # linked by id: a nucleus labelled k lies in cell k's mask
    k = int(nuclei.max()) if nuclei.max() <= len(cells) else int(np.unique(nuclei)[1])
    assert cells[k - 1][nuclei == k].mean() > 0.5
    assert tuple(shapes.scale) == (pixel, pixel)  # results sit on their image
    assert "nuclei; scale: " in widget.status.value and "given; run as it is" in widget.status.value
