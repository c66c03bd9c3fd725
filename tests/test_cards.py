"""Model cards: the shipped files' older metadata shapes read into one card, and bad metadata refused."""

import numpy as np
import pytest
import torch

from napari_cervix import registry
from napari_cervix.cards import CardError, ClassifierCard, InstancesCard, SemanticCard, card_from_metadata
from napari_cervix.registry import list_models, read_card, read_metadata

SEMANTIC = {
    "task": "semantic",
    "architecture": "unet-resnet18",
    "classes": ["background", "cytoplasm", "nucleus"],
    "in_channels": 1,
    "normalization": {"kind": "percentile", "low": 1.0, "high": 99.5, "gray": True},
}


def shipped(name):
    return read_card(registry.fetch_weights(registry.load_registry()[name]))


def test_semantic_files_validation_images_become_the_one_shape():
    card = shipped("unet-mobilenet_v2")
    raw = card.metadata
    assert isinstance(card, SemanticCard) and card.kind == "unet-mobilenet_v2"
    assert card.validation.images == tuple(raw["validation_images"])
    assert card.validation.figures["complete"] == raw["validation"]["complete"]
    assert card.validation.figures["score"] == raw["validation_score"]
    assert card.training.data == tuple(raw["training_data"]) and card.training.images == tuple(raw["training_images"])
    assert card.input.channels == 1 and card.input.color == "gray"
    assert card.input.normalization == {"kind": "percentile", "low": 1.0, "high": 99.5}
    # recorded afterwards (scripts/record_pixel_sizes.py): the ISBI images' size from their normal nuclei
    assert 0.2 < card.input.pixel_size_um < 0.5 and card.input.nucleus_area_px > 0
    assert card.options == {"encoder_depth": 4, "decoder_channels": [64, 32, 16, 16]} and card.divisor == 32


def test_instance_files_val_images_become_the_one_shape():
    card = shipped("imbmdcr-lite")
    listed = card.metadata["training"]["val_images"]
    assert isinstance(card, InstancesCard) and card.preset == "lite" and card.config["type"]
    assert card.validation.images == tuple(sorted({n for names in listed.values() for n in names}))
    assert "EDF010" in card.validation.images
    assert card.validation.figures["isbi2014_synthetic"]["segm"]["AP50"] > 0.9
    assert card.training.data == tuple(card.metadata["training"]["datasets"])
    assert card.input.normalization == {"kind": "unit", "scale": 255.0}


def test_classifier_files_keep_their_cross_validation():
    card = shipped("classifier-descriptor-boost-rgb")
    assert isinstance(card, ClassifierCard)
    assert card.input.channels == 3 and card.input.color == "rgb" and card.input.size == 128
    assert card.validation.images == ()  # cross-validated: no held-out images
    assert card.validation.figures["binary"]["recall_abnormal"] > 0.95
    assert 0 < card.threshold < 1 and set(card.abnormal_classes) < set(card.classes) and card.tta == 8
    assert card.training.data == ("herlev_cells (716 cells)",)


def test_every_shipped_card_round_trips_through_the_current_shape():
    for entry in list_models():
        card = entry.card
        again = card_from_metadata(card.to_metadata(), "round trip", name=card.name)
        assert again == card, entry.name
        assert again.to_metadata() == card.to_metadata()


def test_a_file_with_bad_metadata_is_refused_naming_file_and_key(tmp_path):
    path = tmp_path / "bad.safetensors"
    meta = {**SEMANTIC, "normalization": {"kind": "zscore"}}
    registry.save_weights({"a": torch.zeros(2)}, path, meta)
    with pytest.raises(CardError, match=rf"{path}: metadata key 'normalization': kind must be one of"):
        read_metadata(path)
    with pytest.raises(CardError, match=str(path)):
        registry.resolve(str(path), "semantic")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "detector"}, "key 'task': must be one of semantic, instances, classifier"),
        ({"architecture": ""}, "key 'architecture': must be a non-empty string"),
        ({"classes": []}, "key 'classes': must name at least one class"),
        ({"classes": ["a", "a"]}, "key 'classes': names a class twice"),
        ({"in_channels": 2}, "key 'in_channels': must be 1 \\(gray\\) or 3"),
        ({"input": {"channels": 1, "pixel_size_um": -1}}, "key 'input.pixel_size_um': must be a positive"),
        ({"input": {"channels": 1, "color": "cmyk"}}, "key 'input.color'"),
        ({"input": {"channels": 1, "nucleus_area_px": 0}}, "key 'input.nucleus_area_px': must be a positive"),
        ({"normalization": {"kind": "percentile", "gamma": 2}}, "key 'normalization': percentile normalization takes"),
        ({"normalization": {"kind": "percentile", "low": 99.5, "high": 1}}, "key 'normalization': percentiles need"),
        ({"normalization": {"kind": "percentile", "low": "1"}}, "key 'normalization': parameters must be numbers"),
        ({"training": []}, "key 'training': must be a JSON object"),
        ({"divisor": 0}, "key 'divisor': must be an integer ≥ 1"),
    ],
)
def test_bad_semantic_metadata_names_the_key(change, message):
    with pytest.raises(CardError, match=f"^f.safetensors: metadata {message}"):
        card_from_metadata({**SEMANTIC, **change}, "f.safetensors")


def test_bad_classifier_metadata_names_the_key():
    good = {
        "task": "classifier",
        "architecture": "ld_resnet",
        "classes": ["normal", "abnormal"],
        "abnormal_classes": ["abnormal"],
        "threshold": 0.4,
        "input": {"size": 32, "channels": 1},
    }
    assert card_from_metadata(good).threshold == 0.4
    for change, message in (
        ({"threshold": 1.5}, "key 'threshold': must be a probability"),
        ({"abnormal_classes": ["severe"]}, "key 'abnormal_classes': \\['severe'\\] are not among"),
        ({"input": {"channels": 1}}, "key 'input': a classifier's input must give its crop side"),
        ({"input": {"size": 32, "tta": 0}}, "key 'input.tta': must be an integer ≥ 1"),
    ):
        with pytest.raises(CardError, match=message):
            card_from_metadata({**good, **change})


def test_current_shape_is_read_as_written():
    card = card_from_metadata(
        {
            **{k: v for k, v in SEMANTIC.items() if k not in ("in_channels", "normalization")},
            "input": {
                "channels": 3,
                "color": "rgb",
                "pixel_size_um": 0.25,
                "normalization": {"kind": "channel-percentile", "low": 2.0, "high": 98.0},
            },
            "training": {"data": ["isbi2015:DIR"], "images": ["EDF000"], "steps": 10},
            "validation": {"images": ["EDF010"], "figures": {"mIoU": 0.9}},
        }
    )
    assert card.input.pixel_size_um == 0.25 and card.input.color == "rgb"
    assert card.training.details == {"steps": 10} and card.validation.images == ("EDF010",)
    assert card.validation.figures == {"mIoU": 0.9}


def test_semantic_inference_builds_the_normalizer_its_card_names():
    from napari_cervix.semantic.inference import build_normalizer

    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    wide = card_from_metadata({**SEMANTIC, "normalization": {"kind": "percentile", "low": 0.0, "high": 100.0}})
    normalizer = build_normalizer(wide, image)
    assert (normalizer.lo, normalizer.hi) == (0.0, 99.0)
    np.testing.assert_allclose(normalizer(image), image / 99.0, rtol=1e-6)
    rgb = card_from_metadata(
        {**SEMANTIC, "in_channels": 3, "normalization": {"kind": "channel-percentile", "low": 0.0, "high": 100.0}}
    )
    color = np.stack([image, image * 2, image * 3], axis=-1)
    out = build_normalizer(rgb, color)(color)
    assert out.shape == (10, 10, 3)
    np.testing.assert_allclose(out[..., 2], image / 99.0, rtol=1e-6)  # each channel by its own range


def _tiny_semantic_file(path, channels: int, normalization: dict):
    from napari_cervix.semantic.models import build_model

    torch.manual_seed(0)
    meta = {**SEMANTIC, "architecture": "2se-unet", "arch_options": {"width": 4}, "in_channels": channels}
    meta["normalization"] = normalization
    registry.save_weights(build_model("2se-unet", channels, 3, width=4).state_dict(), path, meta)
    return str(path)


def test_segment_semantic_preprocesses_as_the_card_says(tmp_path):
    from napari_cervix.semantic.inference import segment_semantic

    image = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    usual = _tiny_semantic_file(tmp_path / "a.safetensors", 1, {"kind": "percentile", "low": 1.0, "high": 99.5})
    other = _tiny_semantic_file(tmp_path / "b.safetensors", 1, {"kind": "percentile", "low": 20.0, "high": 80.0})
    _, probs_usual = segment_semantic(image, usual, return_probabilities=True, precision="float32")
    _, probs_other = segment_semantic(image, other, return_probabilities=True, precision="float32")
    assert not np.allclose(probs_usual, probs_other)  # same weights, another normalization: another input

    rgb_model = _tiny_semantic_file(tmp_path / "c.safetensors", 3, {"kind": "channel-percentile", "low": 1, "high": 99})
    color = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    labels, probs = segment_semantic(color, rgb_model, return_probabilities=True, crf=True, precision="float32")
    assert labels.shape == (64, 64) and probs.shape == (3, 64, 64)
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)
