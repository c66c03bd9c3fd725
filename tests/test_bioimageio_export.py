"""bioimage.io export: a shipped semantic model written as a package through the CLI, then run by
bioimageio.core's own test, which reproduces the plugin's output from the raw test image through the
package's preprocessing, weights and postprocessing."""

import zipfile

import numpy as np
import pytest

pytest.importorskip("bioimageio.core")

from napari_cervix.cli import main  # noqa: E402
from napari_cervix.export.bioimageio import ExportError, export_bioimageio, preprocessing  # noqa: E402
from napari_cervix.registry import RegistryError, list_models  # noqa: E402
from napari_cervix.semantic.inference import segment_semantic  # noqa: E402

# The smallest shipped U-Net (0.9 MB), tested on a 128² generated smear to keep the test short.
MODEL, SIZE = "2se-unet", 128


def test_cli_exports_a_package_that_passes_bioimageio_core_test(tmp_path, capsys):
    code = main(["export", "bioimageio", MODEL, "--out", str(tmp_path), "--size", str(SIZE)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"{MODEL}.zip: bioimageio.core test passed" in printed
    package = tmp_path / f"{MODEL}.zip"
    _check_description(package)
    _check_test_tensors_are_our_inference(package)


def _check_description(package):
    from bioimageio.spec import load_model_description

    descr = load_model_description(package)
    (inputs,) = descr.inputs
    (outputs,) = descr.outputs
    assert [str(a.id) for a in inputs.axes] == ["batch", "channel", "y", "x"]
    assert [str(a.id) for a in outputs.axes] == ["batch", "channel", "y", "x"]
    assert list(outputs.axes[1].channel_names) == ["background", "cytoplasm", "nucleus"]
    steps = [p.id for p in inputs.preprocessing if p.id != "ensure_dtype"]
    assert steps == ["scale_range", "clip"]
    assert "softmax" in [p.id for p in outputs.postprocessing]
    assert str(descr.license) == "BSD-3-Clause"
    assert [a.name for a in descr.authors] == ["napari-cervix contributors"]
    assert descr.weights.pytorch_state_dict is not None
    assert any(c.doi for c in descr.cite)


def _check_test_tensors_are_our_inference(package):
    with zipfile.ZipFile(package) as archive:
        test_input = np.load(archive.open("test_input.npy"))
        test_output = np.load(archive.open("test_output.npy"))
    image = test_input[0, 0].astype(np.uint8)  # the generated smear is uint8, stored as float32
    _, probabilities = segment_semantic(
        image, MODEL, tile_size=SIZE, overlap=0, return_probabilities=True, precision="float32", edge_margin=0
    )
    np.testing.assert_allclose(test_output[0], probabilities, atol=1e-6)
    # The plugin's default adds the reflected edge margin, which a package consumer runs without.
    _, with_margin = segment_semantic(image, MODEL, tile_size=SIZE, return_probabilities=True, precision="float32")
    assert np.abs(with_margin - probabilities)[:, :2].max() > 1e-3


def test_every_semantic_card_maps_to_spec_preprocessing():
    for entry in list_models("semantic"):
        ops = preprocessing(entry.card)
        scale = ops[0].kwargs
        assert (scale.min_percentile, scale.max_percentile) == (
            entry.card.input.normalization["low"],
            entry.card.input.normalization["high"],
        )


def test_export_refuses_what_is_not_a_semantic_model(tmp_path):
    classifier = list_models("classifier")[0].name
    with pytest.raises(RegistryError, match="not a semantic model"):
        export_bioimageio(classifier, tmp_path)
    with pytest.raises(ExportError, match="multiple of"):
        export_bioimageio(MODEL, tmp_path, size=100)
    assert not list(tmp_path.iterdir())
