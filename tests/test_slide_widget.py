"""The "Analyze whole slide" dock widget and the synthetic sample slide in a real napari viewer (xvfb-run)."""

import numpy as np
import pandas as pd
import pytest

from napari_cervix.instances.model import InstancesUnavailable, require_backend
from napari_cervix.io.slides import open_slide, write_ome_tiff
from napari_cervix.synth import PIXEL_SIZE_UM, generate_smear

pytestmark = pytest.mark.gui

GLASS = (236, 232, 228)


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    """A 1024² RGB pyramidal OME-TIFF: one small smear in a corner, glass elsewhere (most tiles skipped)."""
    slide = np.empty((1024, 1024, 3), np.uint8)
    slide[:] = GLASS
    slide[:256, :256] = generate_smear((256, 256), n_cells=4, seed=31, rgb=True).image
    return write_ome_tiff(tmp_path_factory.mktemp("slide") / "corner.ome.tif", slide, pixel_size_um=PIXEL_SIZE_UM)


def _widget(viewer):
    from napari_cervix._widgets.slide import SlideWidget

    widget = SlideWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def test_widget_analyzes_a_slide_and_adds_its_results_layers(make_napari_viewer, qtbot, slide_path, tmp_path):
    try:
        require_backend("auto")
    except InstancesUnavailable as err:
        pytest.skip(f"the instance model's default backend cannot run: {err}")
    viewer = make_napari_viewer()
    widget = _widget(viewer)
    out = tmp_path / "out"
    widget.slide_file.value = str(slide_path)
    widget.out.value = str(out)
    widget.tile_size.value = 512
    widget.workers.value = 0
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=300_000)

    table = pd.read_parquet(out / "cells.parquet")
    assert len(table) >= 1
    image, points = viewer.layers[slide_path.name], viewer.layers[f"{slide_path.name} cells"]
    assert image.multiscale and image.scale[-1] == PIXEL_SIZE_UM
    assert len(points.data) == len(table) and "bethesda_class" in points.features
    pd.testing.assert_series_equal(points.features["bethesda_class"], table["bethesda_class"])
    assert widget.status.value.startswith(f"{len(table)} cells in ") and "glass skipped" in widget.status.value


def test_sample_slide_is_a_multiscale_layer_of_a_slide_file_the_widget_can_use(
    make_napari_viewer, monkeypatch, tmp_path
):
    from napari_cervix._sample_data import SAMPLE_SLIDE_SIDE, make_slide_sample
    from napari_cervix.registry import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    [(data, kwargs, layer_type)] = make_slide_sample()
    assert layer_type == "image" and kwargs["multiscale"] and kwargs["rgb"] and len(data) >= 2
    slide = open_slide(kwargs["metadata"]["slide_path"])
    assert slide.shape == (SAMPLE_SLIDE_SIDE, SAMPLE_SLIDE_SIDE, 3) and len(slide.levels) == len(data)
    written = slide.path.stat().st_mtime_ns
    make_slide_sample()  # written once, then reused
    assert slide.path.stat().st_mtime_ns == written

    viewer = make_napari_viewer()
    [layer] = viewer.open_sample("napari-cervix", "slide")  # File → Open Sample, through the manifest
    assert layer.multiscale and layer.metadata["slide_path"] == str(slide.path)
    widget = _widget(viewer)
    widget.image.value = layer
    assert widget.chosen_slide() == str(slide.path)


def test_bad_input_is_refused_and_changes_nothing(make_napari_viewer, qtbot, slide_path, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8), np.uint8), name="not from a file")
    widget = _widget(viewer)
    widget.out.value = str(tmp_path / "out")

    widget.run()  # the picked layer has no file behind it
    assert widget._worker is None and "not opened from a file" in widget.status.value

    text = tmp_path / "notes.txt"
    text.write_text("not a slide")
    widget.slide_file.value = str(text)
    widget.run()
    assert widget._worker is None and "not a slide format" in widget.status.value

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("someone else's")
    widget.slide_file.value = str(slide_path)
    widget.out.value = str(foreign)
    widget.run()  # the folder is refused in the worker, before any tile
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    assert "not empty" in widget.status.value
    assert sorted(p.name for p in foreign.iterdir()) == ["keep.txt"]
    assert [layer.name for layer in viewer.layers] == ["not from a file"]
    assert not (tmp_path / "out").exists()


def test_cancel_stops_between_tiles_and_says_a_rerun_resumes(make_napari_viewer, qtbot, slide_path, tmp_path):
    viewer = make_napari_viewer()
    widget = _widget(viewer)
    widget.slide_file.value = str(slide_path)
    widget.out.value = str(tmp_path / "out")
    widget.run()
    widget.cancel()  # honoured at the worker's next step, before the first tile
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    assert "Run again with the same settings resumes" in widget.status.value
    assert len(viewer.layers) == 0 and not (tmp_path / "out" / "cells.parquet").exists()
    assert widget.run_button.enabled and not widget.cancel_button.enabled
