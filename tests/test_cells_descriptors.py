"""Cell descriptors, boosted trees stored as arrays, the descriptor_boost classifier, color-aware defaults."""

import json

import numpy as np
import pytest
import torch
from skimage.draw import disk

from napari_cervix.cells.boosting import BoostedTrees, trees_from_sklearn
from napari_cervix.cells.classifier import load_classifier, onehot_to_semantic
from napari_cervix.cells.descriptors import crop_descriptor, crop_descriptors, descriptor_names
from napari_cervix.cells.models import Standardize
from napari_cervix.cells.training import TrainConfig, train_classifier
from napari_cervix.imaging import color_kind

SIZE = 40


def color_cell(klass: int, seed: int, size: int = SIZE) -> np.ndarray:
    """3 × S × S RGB cell: pink cytoplasm for the normal classes, blue for abnormal; nucleus grows with class."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 0.9, np.float32)
    cytoplasm = (0.85, 0.55, 0.65) if klass < 3 else (0.5, 0.6, 0.85)
    rr, cc = disk((size / 2, size / 2), size * 0.42, shape=(size, size))
    image[rr, cc] = cytoplasm
    rr, cc = disk((size / 2, size / 2), 2 + klass * 1.5, shape=(size, size))
    image[rr, cc] = (0.3, 0.25, 0.5)
    image = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1)
    return image.transpose(2, 0, 1).astype(np.float32)


def known_mask(size: int, cell_radius: float, nucleus_radius: float) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[disk((size / 2, size / 2), cell_radius, shape=mask.shape)] = 1
    mask[disk((size / 2, size / 2), nucleus_radius, shape=mask.shape)] = 2
    return mask


# ------------------------------------------------------------------------------------ boosted trees


@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_boosted_trees_give_scikit_learns_probabilities(n_classes):
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(n_classes)
    x = rng.random((300, 5))
    y = (x[:, 0] * n_classes).astype(int) % n_classes
    x[::7, 2] = np.nan  # missing values follow the learned side
    model = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(x, y)
    trees = BoostedTrees.from_arrays(trees_from_sklearn(model).to_arrays())
    test = rng.random((200, 5))
    test[::5, 2] = np.nan
    np.testing.assert_allclose(trees.predict_proba(test), model.predict_proba(test), atol=1e-6)
    assert trees.n_classes == n_classes
    with pytest.raises(ValueError, match="features"):
        trees.predict_proba(test[:, :4])


# -------------------------------------------------------------------------------------- descriptors


def test_descriptor_geometry_matches_the_masks():
    crop = color_cell(3, 0)
    mask = known_mask(SIZE, 16, 6)
    names = descriptor_names()
    values = dict(zip(names, crop_descriptor(crop, mask)))
    assert len(crop_descriptor(crop, mask)) == len(names) == len(set(names))
    nucleus, cell = (mask == 2).sum(), (mask > 0).sum()
    assert values["nucleus_fraction"] == pytest.approx(nucleus / SIZE**2)
    assert values["nc_ratio"] == pytest.approx(nucleus / cell)
    assert values["nucleus_circularity"] > 0.8
    # the drawn nucleus is darker and bluer than the cytoplasm
    assert values["nucleus_L_mean"] < values["cytoplasm_L_mean"]
    assert values["nucleus_B_mean"] > values["nucleus_R_mean"]


def test_gray_crops_have_no_saturation_and_empty_nuclei_are_zero():
    gray = color_cell(5, 1).mean(axis=0, keepdims=True)
    mask = known_mask(SIZE, 16, 1)
    mask[mask == 2] = 1  # no nucleus at all
    values = dict(zip(descriptor_names(), crop_descriptor(gray, mask)))
    assert values["crop_saturation_mean"] == pytest.approx(0, abs=1e-6)
    assert values["nucleus_fraction"] == 0 and values["nc_ratio"] == 0 and values["nucleus_L_mean"] == 0
    assert np.isfinite(crop_descriptor(gray, mask)).all()


def test_descriptors_of_a_batch_and_bad_input():
    crops = np.stack([color_cell(k, k) for k in range(3)])
    masks = np.stack([known_mask(SIZE, 16, 3 + k) for k in range(3)])
    table = crop_descriptors(crops, masks)
    assert table.shape == (3, len(descriptor_names()))
    np.testing.assert_allclose(table[1], crop_descriptor(crops[1], masks[1]))
    assert crop_descriptors(crops[:0], masks[:0]).shape == (0, len(descriptor_names()))
    with pytest.raises(ValueError, match="masks"):
        crop_descriptors(crops, masks[:2])


def test_onehot_masks_back_to_semantic():
    semantic = known_mask(SIZE, 16, 5)
    onehot = np.stack([semantic == 1, semantic == 2]).astype(np.float32)[None]
    np.testing.assert_array_equal(onehot_to_semantic(onehot)[0], semantic)


# ------------------------------------------------------------------------------- color-aware models


def test_joint_standardization_keeps_the_stain_hue():
    pink = torch.tensor([0.9, 0.5, 0.6]).view(1, 3, 1, 1).expand(1, 3, 8, 8).clone()
    blue = torch.tensor([0.5, 0.6, 0.9]).view(1, 3, 1, 1).expand(1, 3, 8, 8).clone()
    pink[..., :4, :] *= 0.5  # some structure so the per-channel std is not zero
    blue[..., :4, :] *= 0.5
    per_channel, joint = Standardize(True), Standardize(False)
    assert torch.allclose(per_channel(pink), per_channel(blue), atol=1e-3)  # hue erased
    assert not torch.allclose(joint(pink), joint(blue), atol=1e-2)  # hue kept


def test_color_kind():
    gray = np.random.default_rng(0).random((8, 8))
    assert color_kind(gray) == "gray"
    assert color_kind(np.repeat(gray[..., None], 3, axis=-1)) == "gray"  # gray saved as RGB
    color = np.stack([gray, gray * 0.5, gray], axis=-1)
    assert color_kind(color) == "rgb" and color_kind(np.concatenate([color, color[..., :1]], -1)) == "rgb"


@pytest.fixture(scope="module")
def color_training_set():
    targets = np.repeat(np.arange(7), 20)  # the trees' leaves need ≥ 20 cells (scikit-learn's default)
    crops = np.stack([color_cell(k, i) for i, k in enumerate(targets)])
    return crops, targets


def boost_config(**overrides) -> TrainConfig:
    options = dict(
        arch="descriptor_boost",
        size=SIZE,
        network_size=24,
        channels=3,
        widths=(4, 8, 16),
        blocks=1,
        channels_per_class=2,
        epochs=2,
        batch_size=16,
        tta=2,
        device="cpu",
        checkpoint_minutes=0.0,
        boost_iterations=30,
        boost_learning_rate=0.3,
    )
    options.update(overrides)
    return TrainConfig(**options)


def test_descriptor_boost_trains_saves_and_loads(color_training_set, tmp_path):
    from safetensors.numpy import load_file

    crops, targets = color_training_set
    # the shipped recipe: color descriptors beside a gray CNN
    classifier = train_classifier(boost_config(network_channels=1), crops, targets, log=lambda m: None)
    assert classifier.needs_masks and classifier.network_size == 24 and classifier.mask_source == "otsu"
    assert classifier.network_channels == 1 and classifier.network.trunk.stem[0].in_channels == 1
    proba = classifier.predict_proba(crops)
    assert proba.shape == (len(crops), 7)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    # the trees alone separate this easy set: nucleus size and stain are both in the descriptors
    trees_only = train_classifier(
        boost_config(network_channels=1, cnn_weight=0.0), crops, targets, network=classifier.network, log=lambda m: None
    )
    assert (trees_only.predict_proba(crops).argmax(1) == targets).mean() > 0.9
    path = tmp_path / "boost.safetensors"
    classifier.save(path)
    assert {"boost.feature", "boost.threshold", "boost.tree_start"} <= set(load_file(str(path)))
    loaded = load_classifier(path)
    assert loaded.arch == "descriptor_boost" and loaded.network_size == 24 and loaded.channels == 3
    assert loaded.network_channels == 1
    np.testing.assert_allclose(loaded.predict_proba(crops[:6]), proba[:6], atol=2e-3)  # fp16 CNN storage


def test_default_is_chosen_by_input_color(tmp_path, monkeypatch):
    """A registry with a gray and a color default: "default" follows the input's color."""
    from napari_cervix import registry
    from napari_cervix.cells.classify import classify_cells

    crops = np.stack([color_cell(k, k) for k in range(7)])
    color = train_classifier(boost_config(epochs=1), crops, np.arange(7), log=lambda m: None)
    gray = train_classifier(
        boost_config(epochs=1, channels=1), crops.mean(1, keepdims=True), np.arange(7), log=lambda m: None
    )
    monkeypatch.setattr(registry, "weights_dir", lambda: tmp_path)
    (tmp_path / registry.REGISTRY_FILE).write_text(json.dumps({"models": []}))
    color.save(tmp_path / "c.safetensors")
    gray.save(tmp_path / "g.safetensors")
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "ship_weights.py"
    spec = importlib.util.spec_from_file_location("ship_weights", script)
    ship_weights = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship_weights)
    ship_weights.ship(tmp_path / "g.safetensors", "gray-one", folder=tmp_path, default_for=("gray",))
    ship_weights.ship(tmp_path / "c.safetensors", "color-one", folder=tmp_path, default_for=("rgb", "gray"))
    # the later registration takes "gray" over: one model per input kind
    assert registry.default_model("classifier", "gray").name == "color-one"
    ship_weights.ship(tmp_path / "g.safetensors", "gray-one", folder=tmp_path, default_for=("gray",))
    assert registry.default_model("classifier", "gray").name == "gray-one"
    assert registry.default_model("classifier", "rgb").name == "color-one"
    assert registry.default_model("classifier").name == "gray-one"
    assert load_classifier("default", "rgb").channels == 3 and load_classifier("default", "gray").channels == 1

    image = np.full((64, 64, 3), 0.9, np.float32)
    cells = np.zeros((64, 64), np.int32)
    cells[disk((32, 32), 14)] = 1
    image[cells == 1] = (0.5, 0.6, 0.85)
    picked = []
    real_load = load_classifier

    def spy(model, kind=None):
        picked.append(kind)
        return real_load(model, kind)

    monkeypatch.setattr("napari_cervix.cells.classifier.load_classifier", spy)
    table = classify_cells(image, cells)
    classify_cells(image.mean(-1), cells)
    assert picked == ["rgb", "gray"]
    # the descriptor model measures nuclei with its own mask source: given nuclei change the table, not P
    nuclei = np.zeros_like(cells)
    nuclei[disk((32, 32), 5)] = 1
    with_nuclei = classify_cells(image, cells, nuclei)
    assert with_nuclei["nucleus_area"].iloc[0] > 0
    np.testing.assert_allclose(with_nuclei["p_reviewable"], table["p_reviewable"], atol=1e-6)

    # evaluate follows the dataset's color the same way
    import imageio.v3 as iio

    from napari_cervix.cells.commands import evaluate_classifier
    from napari_cervix.classes import HERLEV_CLASSES

    for kind in ("rgb", "gray"):
        root = tmp_path / f"herlev-{kind}"
        for k, name in enumerate(HERLEV_CLASSES):
            (root / name).mkdir(parents=True)
            cell = (color_cell(k, k).transpose(1, 2, 0) * 255).astype(np.uint8)
            if kind == "gray":
                cell = np.repeat(cell.mean(-1, keepdims=True).astype(np.uint8), 3, axis=-1)  # gray saved as RGB
            iio.imwrite(root / name / f"1{k}-2{k}-001.png", cell)
        picked.clear()
        result = evaluate_classifier("default", f"herlev:{root}")
        assert picked == [kind] and result["cells"] == 7
