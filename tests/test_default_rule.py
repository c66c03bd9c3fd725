"""One default rule: the Classify widget's "default (chosen for this image)", the console function and the
registry pick the same model for the same image, and give the same table (run under xvfb-run)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from skimage.draw import disk

import napari_cervix as nc
from napari_cervix import registry

ROOT = Path(__file__).resolve().parents[1]


def smear(color: bool):
    """A small field of three cells with dark nuclei: gray (uint8) or stained color."""
    rng = np.random.default_rng(3)
    cells = np.zeros((160, 160), np.int32)
    nuclei = np.zeros_like(cells)
    for label, (y, x, r) in enumerate([(45, 45, 28), (50, 115, 24), (115, 80, 30)], start=1):
        cells[disk((y, x), r, shape=cells.shape)] = label
        nuclei[disk((y + 3, x - 2), r // 3, shape=cells.shape)] = label
    if color:
        image = np.empty((160, 160, 3), np.float32)
        image[:] = (0.93, 0.92, 0.95)
        image[cells > 0] = (0.72, 0.55, 0.78)  # pink-violet cytoplasm
        image[nuclei > 0] = (0.25, 0.2, 0.5)  # blue nuclei
    else:
        image = np.full((160, 160), 0.9, np.float32)
        image[cells > 0] = 0.65
        image[nuclei > 0] = 0.3
    image = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1)
    return (image * 255).astype(np.uint8), cells


def test_every_widget_lists_the_default_first(make_napari_viewer):
    from napari_cervix._widgets._common import DEFAULT_CHOICE, chosen_model
    from napari_cervix._widgets.classify import ClassifyWidget
    from napari_cervix._widgets.semantic import SemanticWidget

    viewer = make_napari_viewer()
    for widget, task in ((ClassifyWidget(viewer), "classifier"), (SemanticWidget(viewer), "semantic")):
        choices = list(widget.model.choices)
        assert choices[0] == DEFAULT_CHOICE and widget.model.value == DEFAULT_CHOICE
        assert choices[1:-1] == [e.name for e in registry.list_models(task)]
        assert chosen_model(widget.model, widget.model_file) == "default"


@pytest.mark.parametrize(
    ("color", "expected"), [(False, "classifier-ld-resnet-gray"), (True, "classifier-descriptor-boost-rgb")]
)
def test_classify_widget_and_console_agree(make_napari_viewer, qtbot, color, expected):
    from napari_cervix._widgets.classify import ClassifyWidget
    from napari_cervix.imaging import color_kind

    image, cells = smear(color)
    assert color_kind(image) == ("rgb" if color else "gray")
    viewer = make_napari_viewer()
    viewer.add_image(image, name="smear", rgb=color)
    viewer.add_labels(cells, name="cells")
    widget = ClassifyWidget(viewer)
    widget.cells.value = viewer.layers["cells"]
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120000)
    from_widget = widget._table
    from_console = nc.classify_cells(image, cells)
    pd.testing.assert_frame_equal(from_widget, from_console)
    assert registry.default_model("classifier", color_kind(image)).name == expected
    pd.testing.assert_frame_equal(from_console, nc.classify_cells(image, cells, model=expected))


def test_cli_default_follows_the_same_rule(tmp_path):
    from napari_cervix.cli import main

    image, cells = smear(True)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "cells.npy", cells)
    out = tmp_path / "table.csv"
    argv = [
        "classify",
        "--image",
        str(tmp_path / "image.npy"),
        "--cells",
        str(tmp_path / "cells.npy"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    from_cli = pd.read_csv(out)
    from_console = nc.classify_cells(image, cells)
    assert list(from_cli["predicted_class"]) == list(from_console["predicted_class"].astype(str))
    np.testing.assert_allclose(from_cli["p_reviewable"], from_console["p_reviewable"], rtol=1e-5)


def _ship_script():
    spec = importlib.util.spec_from_file_location("ship_weights", ROOT / "scripts" / "ship_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _classifier_meta(channels):
    return {
        "task": "classifier",
        "architecture": "ld_resnet",
        "classes": ["normal", "abnormal"],
        "abnormal_classes": ["abnormal"],
        "input": {"size": 32, "channels": channels},
        "validation": {"binary": {"auc": 0.5}},
    }


def _classifier_file(path, channels):
    registry.save_weights({"net.x": torch.zeros(1)}, path, _classifier_meta(channels))


def test_ship_script_writes_entries_from_the_file(tmp_path, monkeypatch):
    ship = _ship_script().ship
    monkeypatch.setattr(registry, "weights_dir", lambda: tmp_path)
    _classifier_file(tmp_path / "runs-g.safetensors", 1)
    _classifier_file(tmp_path / "runs-c.safetensors", 3)
    ship(tmp_path / "runs-g.safetensors", "gray-one", folder=tmp_path, default_for=("gray",))
    record = ship(tmp_path / "runs-c.safetensors", "color-one", folder=tmp_path, default_for=("rgb", "gray"))
    assert set(record) == {"name", "file", "sha256", "default_for"}  # nothing copied from the header
    assert registry.default_model("classifier", "gray").name == "color-one"  # the later one takes "gray" over
    ship(tmp_path / "runs-g.safetensors", "gray-one", folder=tmp_path, default_for=("gray",))
    assert registry.default_model("classifier", "gray").name == "gray-one"
    assert registry.default_model("classifier", "rgb").name == "color-one"
    hosted = ship(tmp_path / "runs-c.safetensors", "hosted-one", folder=tmp_path, url="https://example.org/c.st")
    assert "file" not in hosted and hosted["card"]["input"]["channels"] == 3
    entries = registry.load_registry()
    assert entries["hosted-one"].card == registry.read_card(tmp_path / "runs-c.safetensors", name="hosted-one")
    saved = json.loads((tmp_path / registry.REGISTRY_FILE).read_text())["models"]
    assert [m["name"] for m in saved] == ["color-one", "gray-one", "hosted-one"]
    assert not (tmp_path / "hosted-one.safetensors").exists()  # hosted files stay where they are hosted


def test_ship_script_stores_float16_on_request(tmp_path, monkeypatch):
    ship = _ship_script().ship
    monkeypatch.setattr(registry, "weights_dir", lambda: tmp_path)
    source = tmp_path / "runs-c.safetensors"
    registry.save_weights(
        {"net.w": torch.linspace(0, 1, 1000), "net.steps": torch.arange(3)}, source, _classifier_meta(3)
    )
    record = ship(source, "small-one", folder=tmp_path, float16=True)
    shipped = registry.load_state_dict(tmp_path / record["file"])
    assert shipped["net.w"].dtype == torch.float16 and shipped["net.steps"].dtype == torch.int64
    assert torch.allclose(shipped["net.w"].float(), torch.linspace(0, 1, 1000), atol=1e-3)
    assert (tmp_path / record["file"]).stat().st_size < 0.75 * source.stat().st_size
    assert registry.read_metadata(tmp_path / record["file"]) == registry.read_metadata(source)
    assert record["sha256"] == registry.sha256_of(tmp_path / record["file"])
    with pytest.raises(ValueError, match="hosted"):
        ship(source, "hosted-one", folder=tmp_path, url="https://example.org/c.st", float16=True)
