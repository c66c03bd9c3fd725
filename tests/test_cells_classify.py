"""Classifiers: LD loss, training, save/load, feature-fusion arrays, classify_cells, CLI, shipped weights."""

import json

import numpy as np
import pytest
import torch
from skimage.draw import disk

from napari_cervix.cells.classifier import load_classifier
from napari_cervix.cells.classify import classify_cells
from napari_cervix.cells.crops import otsu_semantic_mask
from napari_cervix.cells.training import (
    TrainConfig,
    binary_scores,
    choose_threshold,
    consistent_predictions,
    herlev_groups,
    summarize_cv,
    train_classifier,
)
from napari_cervix.classes import HERLEV_ABNORMAL, HERLEV_CLASSES
from napari_cervix.cli import main
from napari_cervix.imaging import ImageError

SIZE = 32


def cell_image(klass: int, seed: int, size: int = SIZE) -> np.ndarray:
    """A gray single cell whose nucleus grows and darkens with the Herlev class index (a learnable cue)."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size), 0.85, np.float32)
    rr, cc = disk((size / 2, size / 2), size * 0.42, shape=image.shape)
    image[rr, cc] = 0.6
    rr, cc = disk((size / 2 + rng.uniform(-1, 1), size / 2), 2 + klass * 1.3, shape=image.shape)
    image[rr, cc] = 0.45 - 0.04 * klass
    return np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1).astype(np.float32)


def tiny_config(arch: str, **overrides) -> TrainConfig:
    options = dict(
        arch=arch,
        size=SIZE,
        widths=(4, 8, 16),
        blocks=1,
        channels_per_class=2,
        epochs=3,
        batch_size=16,
        tta=2,
        device="cpu",
        checkpoint_minutes=0.0,
    )
    options.update(overrides)
    return TrainConfig(**options)


@pytest.fixture(scope="module")
def crops_and_targets():
    targets = np.repeat(np.arange(7), 4)
    crops = np.stack([cell_image(k, i) for i, k in enumerate(targets)])[:, None]
    return crops, targets


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory, crops_and_targets):
    crops, targets = crops_and_targets
    classifier = train_classifier(tiny_config("ld_resnet"), crops, targets, log=lambda m: None)
    path = tmp_path_factory.mktemp("classifier") / "tiny.safetensors"
    classifier.save(path, {"training": {"note": "test"}})
    return path


# ----------------------------------------------------------------------------------- the LD loss


def test_ld_loss_parts_and_gradient():
    from napari_cervix.cells.models import LDResNet, ld_loss

    torch.manual_seed(0)
    net = LDResNet(1, 7, (4, 8, 16), 1, channels_per_class=4)
    x = torch.rand(6, 1, SIZE, SIZE)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    logits, grouped = net(x)
    assert logits.shape == (6, 7) and grouped.shape[1] == 28
    total, discriminative, diversity = ld_loss(grouped, y, 7, 4, tau=20.0)
    assert 0 <= float(diversity) <= 1 - 1 / 4 + 1e-6  # D ∈ [1, ξ] → 1 − D/ξ ∈ [0, 1 − 1/ξ]
    assert float(total) == pytest.approx(float(discriminative) + 20 * float(diversity), rel=1e-5)
    total.backward()
    assert net.group_conv[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="channels"):
        ld_loss(grouped, y, 7, 5)


def test_diversity_is_low_when_channels_look_at_different_places():
    from napari_cervix.cells.models import ld_loss

    spread = torch.full((1, 2, 4, 4), -10.0)
    spread[0, 0, 0, 0] = spread[0, 1, 3, 3] = 10.0  # each channel peaks somewhere else
    same = torch.full((1, 2, 4, 4), -10.0)
    same[0, :, 0, 0] = 10.0
    _, _, div_spread = ld_loss(spread, torch.tensor([0]), 1, 2, drop_fraction=0)
    _, _, div_same = ld_loss(same, torch.tensor([0]), 1, 2, drop_fraction=0)
    assert float(div_spread) < 0.05 < 0.45 < float(div_same)


# -------------------------------------------------------------------------- training and storage


def test_augmentation_keeps_shapes_and_is_seeded():
    from napari_cervix.cells.augment import augment_batch, dihedral

    x = torch.rand(4, 1, SIZE, SIZE)
    m = torch.zeros(4, 2, SIZE, SIZE)
    a, am = augment_batch(x, m, generator=torch.Generator().manual_seed(1))
    b, _ = augment_batch(x, m, generator=torch.Generator().manual_seed(1))
    assert a.shape == x.shape and am.shape == m.shape and torch.equal(a, b)
    assert torch.equal(dihedral(dihedral(x, 1), 3), x)


def test_trained_classifier_round_trips_through_safetensors(tiny_model_file, crops_and_targets):
    from napari_cervix.registry import read_metadata, resolve

    crops, _ = crops_and_targets
    loaded = load_classifier(tiny_model_file)
    meta = read_metadata(tiny_model_file)
    assert meta["task"] == "classifier" and meta["architecture"] == "ld_resnet"
    assert meta["classes"] == list(HERLEV_CLASSES) and meta["abnormal_classes"] == list(HERLEV_ABNORMAL)
    assert meta["input"] == {**meta["input"], "size": SIZE, "channels": 1}
    proba = loaded.predict_proba(crops)
    assert proba.shape == (len(crops), 7)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    again = load_classifier(str(tiny_model_file)).predict_proba(crops)
    np.testing.assert_allclose(proba, again, atol=1e-6)  # deterministic inference
    path, _ = resolve(str(tiny_model_file), "classifier")
    assert path == tiny_model_file
    with pytest.raises(ValueError, match="crops must be"):
        loaded.predict_proba(np.zeros((2, 3, SIZE, SIZE), np.float32))


def test_training_learns_the_cue(crops_and_targets):
    """Enough epochs on an easy cue (nucleus size) must beat chance clearly on the training cells."""
    crops, targets = crops_and_targets
    classifier = train_classifier(
        tiny_config("ld_resnet", epochs=40, beta=0.0, lr=5e-3), crops, targets, log=lambda m: None
    )
    accuracy = (classifier.predict_proba(crops).argmax(1) == targets).mean()
    assert accuracy > 0.4  # chance is 1/7


def test_mask_fusion_outputs_bethesda_groups(crops_and_targets, tmp_path):
    crops, targets = crops_and_targets
    classifier = train_classifier(tiny_config("mask_fusion"), crops, targets, log=lambda m: None)
    assert classifier.classes == ["benign", "L-SIL", "H-SIL"]
    assert classifier.abnormal_classes == ["L-SIL", "H-SIL"] and classifier.mask_source == "otsu"
    path = tmp_path / "mf.safetensors"
    classifier.save(path)
    loaded = load_classifier(path)
    assert loaded.needs_masks
    proba = loaded.predict_proba(crops[:5])
    assert proba.shape == (5, 3)
    np.testing.assert_allclose(proba, classifier.predict_proba(crops[:5]), atol=2e-3)  # fp16 storage


def test_feature_fusion_head_is_stored_as_arrays(crops_and_targets, tmp_path):
    from safetensors.numpy import load_file

    crops, targets = crops_and_targets
    classifier = train_classifier(tiny_config("feature_fusion", epochs=1), crops, targets, log=lambda m: None)
    head = classifier.fusion_head
    assert head.vocabulary.shape[1] == 128 and len(head.layers) == 2  # SIFT words, one hidden layer
    path = tmp_path / "ff.safetensors"
    classifier.save(path)
    stored = load_file(str(path))
    assert {"fusion.vocabulary", "fusion.mlp.0.weight", "fusion.pca.lbp.components"} <= set(stored)
    loaded = load_classifier(path)
    np.testing.assert_allclose(loaded.predict_proba(crops[:6]), classifier.predict_proba(crops[:6]), atol=2e-2)


def test_resume_continues_from_the_checkpoint(crops_and_targets, tmp_path):
    crops, targets = crops_and_targets
    logs = []
    train_classifier(tiny_config("ld_resnet", epochs=2), crops, targets, checkpoint_dir=tmp_path, log=logs.append)
    assert (tmp_path / "ld_resnet.ckpt").exists()
    resumed = []
    train_classifier(
        tiny_config("ld_resnet", epochs=2), crops, targets, checkpoint_dir=tmp_path, resume=True, log=resumed.append
    )
    assert any("resumed" in m and "epoch 2" in m for m in resumed)
    assert not any(m.startswith("epoch") for m in resumed)  # nothing left to train
    with pytest.raises(ValueError, match="2-epoch run"):
        train_classifier(tiny_config("ld_resnet", epochs=5), crops, targets, checkpoint_dir=tmp_path, resume=True)


# ----------------------------------------------------------------------------- threshold, scores


def test_threshold_reaches_the_recall_target():
    rng = np.random.default_rng(0)
    is_abnormal = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    p = np.r_[rng.uniform(0.3, 1, 100), rng.uniform(0, 0.6, 100)]
    t = choose_threshold(p, is_abnormal, 0.95)
    scores = binary_scores(p, is_abnormal, t)
    assert scores["recall_abnormal"] >= 0.95
    assert binary_scores(p, is_abnormal, t + 1e-3)["recall_abnormal"] < 0.96  # the highest such threshold
    proba = np.array([[0.5, 0.1, 0.4], [0.6, 0.3, 0.1]])
    abnormal = np.array([False, True, True])
    # flagged → best abnormal class even if a normal class is more probable; class and flag never disagree
    assert list(consistent_predictions(proba, abnormal, proba[:, 1:].sum(1), 0.45)) == [2, 0]


def test_cv_summary_from_out_of_fold_predictions():
    targets = np.repeat(np.arange(7), 10)
    oof = np.full((70, 7), 0.01)
    oof[np.arange(70), targets] = 0.94  # a perfect model
    summary = summarize_cv(oof, np.arange(70) % 5, targets, "ld_resnet", 0.97)["summary"]
    assert summary["accuracy"] == 1.0 and summary["binary"]["specificity"] == 1.0
    assert summary["binary"]["recall_abnormal"] == 1.0 and summary["folds"] == 5
    assert np.trace(np.array(summary["confusion"])) == 70
    assert list(herlev_groups(["1-2-001", "1-2-002", "3-4-001", "x"])) == [0, 0, 1, 2]


def test_otsu_fallback_mask_finds_the_dark_nucleus():
    image = cell_image(5, 0, 64)
    mask = otsu_semantic_mask(image)
    assert mask[32, 32] == 2 and mask[32, 6] == 1 and mask[0, 0] == 0
    assert (otsu_semantic_mask(np.zeros((16, 16))) == 1).all()


# --------------------------------------------------------------------------------- classify_cells


def smear(n=4, size=128):
    """A gray field of n round cells with nuclei, labelled 1..n, and one overlap-free nucleus mask."""
    image = np.full((size, size), 0.85, np.float32)
    cells = np.zeros((size, size), np.int32)
    nuclei = np.zeros((size, size), bool)
    for label, (cy, cx) in enumerate([(30, 30), (30, 95), (95, 30), (95, 95)][:n], start=1):
        rr, cc = disk((cy, cx), 24, shape=image.shape)
        cells[rr, cc] = label
        image[rr, cc] = 0.6
        rr, cc = disk((cy, cx), 4 + 2 * label, shape=image.shape)
        nuclei[rr, cc] = True
        image[rr, cc] = 0.3
    return image, cells, nuclei


def test_classify_cells_table(tiny_model_file):
    image, cells, nuclei = smear()
    table = classify_cells(image, cells, nuclei, model=tiny_model_file)
    assert list(table["label"]) == [1, 2, 3, 4]
    probabilities = table[[f"p_{c}" for c in HERLEV_CLASSES]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    assert set(table["predicted_class"]) <= set(HERLEV_CLASSES)
    flagged = table["p_reviewable"] >= load_classifier(tiny_model_file).threshold
    assert (table["reviewable"] == flagged).all()
    assert (table["reviewable"] == table["predicted_class"].isin(HERLEV_ABNORMAL)).all()
    assert {"nc_ratio", "cell_area", "lbp_0"} <= set(table.columns)

    # Overlapping cells as a stack: one row each; RGB input works the same way.
    stack = np.stack([cells == k for k in range(1, 5)])
    stack[0, 30:60, 30:60] = True  # cell 1 now overlaps cell 4's neighbourhood
    rgb = np.repeat(image[..., None], 3, axis=-1)
    assert len(classify_cells(rgb, stack, nuclei, model=tiny_model_file)) == 4

    empty = classify_cells(image, np.zeros_like(cells), model=tiny_model_file)
    assert len(empty) == 0 and "predicted_class" in empty.columns and "p_reviewable" in empty.columns
    with pytest.raises(ImageError, match="same pixels"):
        classify_cells(image, cells[:64], model=tiny_model_file)


def test_progress_steps_reach_the_total(tiny_model_file):
    from napari_cervix.cells.classify import classify_cells_steps

    image, cells, nuclei = smear()
    steps = []
    generator = classify_cells_steps(image, cells, nuclei, tiny_model_file)
    try:
        while True:
            steps.append(next(generator))
    except StopIteration as stop:
        table = stop.value
    assert steps[0].done == 0 and steps[-1].done == steps[-1].total == len(table) == 4


def test_shipped_classifiers_are_registered_and_load():
    from napari_cervix.registry import default_model, fetch_weights, list_models, read_metadata

    entries = {e.name: e for e in list_models("classifier")}
    assert {e.architecture for e in entries.values()} == {
        "ld_resnet",
        "mask_fusion",
        "feature_fusion",
        "descriptor_boost",
    }
    # one default per kind of input, each trained for the input it meets
    assert default_model("classifier", "gray").architecture == "ld_resnet"
    assert default_model("classifier", "rgb").architecture == "descriptor_boost"
    total = 0
    for entry in entries.values():
        path = fetch_weights(entry)  # checks the sha256
        total += path.stat().st_size
        meta = read_metadata(path)
        kinds = entry.default_for or ("gray",)
        assert meta["input"]["channels"] == (3 if kinds == ("rgb",) else 1)
        assert 0 < meta["threshold"] < 1 and meta["validation"]["binary"]["recall_abnormal"] >= 0.95
    assert total < 15 * 2**20
    for kind, channels in (("gray", 1), ("rgb", 3)):
        classifier = load_classifier("default", kind)
        crops = np.stack([cell_image(k, k, classifier.size) for k in (0, 6)])[:, None].repeat(channels, axis=1)
        assert classifier.channels == channels and classifier.predict_proba(crops).shape == (2, 7)


# ------------------------------------------------------------------------------------------- CLI


def herlev_folder(root, per_class=2):
    import imageio.v3 as iio

    for k, name in enumerate(HERLEV_CLASSES):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = (cell_image(k, 10 * k + i, 64) * 255).astype(np.uint8)
            iio.imwrite(folder / f"1000{k}-200{i}-00{i}.png", np.repeat(image[..., None], 3, axis=-1))
    return root


def test_cli_classify_evaluate_train(tiny_model_file, tmp_path, capsys):
    import pandas as pd

    image, cells, nuclei = smear()
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "cells.npy", cells)
    np.save(tmp_path / "nuclei.npy", nuclei)
    out = tmp_path / "table.csv"
    assert (
        main(
            [
                "classify",
                "--image",
                str(tmp_path / "image.npy"),
                "--cells",
                str(tmp_path / "cells.npy"),
                "--nuclei",
                str(tmp_path / "nuclei.npy"),
                "--model",
                str(tiny_model_file),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert list(pd.read_csv(out)["label"]) == [1, 2, 3, 4]

    dataset = herlev_folder(tmp_path / "herlev")
    capsys.readouterr()
    assert (
        main(["evaluate", "classifier", "--model", str(tiny_model_file), "--dataset", f"herlev:{dataset}", "--json"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert set(result["binary"]) == {"recall_abnormal", "specificity", "accuracy", "auc"}
    assert 0 <= result["accuracy_7class"] <= 1 and np.array(result["confusion"]).sum() == 14

    model_dir = tmp_path / "trained"
    args = [
        "train",
        "classifier",
        "--arch",
        "ld_resnet",
        "--dataset",
        f"herlev:{dataset}",
        "--out",
        str(model_dir),
        "--epochs",
        "1",
        "--size",
        "32",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    trained = load_classifier(model_dir / "ld_resnet.safetensors")
    assert trained.size == 32 and trained.metadata["training"]["epochs"] == 1
    assert main(args + ["--resume"]) == 0

    assert (
        main(
            [
                "classify",
                "--image",
                str(tmp_path / "missing.npy"),
                "--cells",
                str(tmp_path / "cells.npy"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- dock widget


@pytest.mark.gui
def test_classify_widget_sets_features_colors_and_exports(make_napari_viewer, qtbot, tmp_path):
    import pandas as pd

    from napari_cervix._widgets.classify import CLASS_COLORS, ClassifyWidget

    viewer = make_napari_viewer()
    image, cells, nuclei = smear()
    viewer.add_image(image, name="smear")
    layer = viewer.add_labels(cells, name="cells")
    layer.features = pd.DataFrame({"label": np.arange(5), "my_note": ["bg", "a", "b", "c", "d"]})
    widget = ClassifyWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.value = viewer.layers["smear"]
    widget.cells.value = layer
    widget.run()
    qtbot.waitUntil(lambda: widget._table is not None and widget._worker is None, timeout=120_000)

    features = layer.features
    assert list(features["label"]) == [0, 1, 2, 3, 4]  # row i = label i, background row 0
    assert pd.isna(features.loc[0, "predicted_class"])
    assert list(features["my_note"]) == ["bg", "a", "b", "c", "d"]  # the user's column is kept
    assert features.loc[1:, "predicted_class"].notna().all() and "p_reviewable" in features
    for label in range(1, 5):
        expected = CLASS_COLORS[features.loc[label, "predicted_class"]]
        np.testing.assert_allclose(layer.colormap.map(label), expected, atol=1e-6)
    assert "4 cells" in widget.summary.value
    assert any("Features table" in name for name in viewer.window.dock_widgets)  # napari's table is opened

    target = tmp_path / "cells.csv"
    widget.export_path.value = target
    widget.export()
    exported = pd.read_csv(target)
    assert list(exported["label"]) == [1, 2, 3, 4] and not list(tmp_path.glob(".*tmp*"))


@pytest.mark.gui
def test_classify_widget_refuses_bad_layers(make_napari_viewer, monkeypatch):
    from napari_cervix._widgets import classify as module

    messages = []
    monkeypatch.setattr(module, "show_error", messages.append)
    viewer = make_napari_viewer()
    widget = module.ClassifyWidget(viewer)
    widget.run()
    assert "choose an image layer" in messages[-1]
    viewer.add_image(np.zeros((40, 40), np.float32), name="img")
    viewer.add_labels(np.zeros((30, 40), np.int32), name="small")
    widget.image.value, widget.cells.value = viewer.layers["img"], viewer.layers["small"]
    widget.run()
    assert "same pixels" in messages[-1]
    viewer.add_labels(np.zeros((40, 40), np.int32), name="empty")
    widget.cells.value = viewer.layers["empty"]
    widget.run()
    assert "no cells" in messages[-1]
