import numpy as np
import pytest
import torch

from napari_cervix.imaging import ImageError, PercentileNormalizer
from napari_cervix.registry import RegistryError, save_weights
from napari_cervix.semantic import losses
from napari_cervix.semantic.crf import bilateral_filter, dense_crf
from napari_cervix.semantic.inference import load_semantic_model, segment_semantic, segment_semantic_steps
from napari_cervix.semantic.models import ARCHITECTURES, build_model
from napari_cervix.semantic.postprocess import cells_from_semantic


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_maps_gray_to_three_classes(arch):
    torch.manual_seed(0)
    net = build_model(arch).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 64, 96))
    assert out.shape == (1, 3, 64, 96) and torch.isfinite(out).all()


def test_unknown_architecture_names_the_choices():
    with pytest.raises(ValueError, match="residual-se-unet"):
        build_model("unet-nope")


def test_partial_labels_do_not_penalise_cytoplasm_vs_background_choice():
    """On a nuclei-only frame, predicting cytoplasm or background off the nuclei costs the same."""
    target = torch.full((1, 4, 4), losses.NOT_NUCLEUS)
    target[0, :2, :2] = 2
    as_background = torch.full((1, 3, 4, 4), -10.0)
    as_background[:, 0] = 10
    as_background[:, 2, :2, :2] = 20
    as_cytoplasm = as_background.clone()
    as_cytoplasm[:, [0, 1]] = as_background[:, [1, 0]]
    for name in losses.LOSSES:
        fn = losses.make_loss(name)
        assert fn(as_background, target).item() == pytest.approx(fn(as_cytoplasm, target).item(), abs=1e-5)
        # …but missing the nucleus is penalised
        wrong = as_background.clone()
        wrong[:, 2] = -10
        assert fn(wrong, target).item() > fn(as_background, target).item() + 0.1


def test_complete_labels_losses_are_zero_ish_when_perfect_and_ignore_255():
    target = torch.tensor([[[0, 1], [2, 255]]])
    logits = torch.full((1, 3, 2, 2), -20.0)
    for cls, (y, x) in zip((0, 1, 2), ((0, 0), (0, 1), (1, 0))):
        logits[0, cls, y, x] = 20
    logits[0, :, 1, 1] = torch.tensor([20.0, -20, -20])  # ignored pixel predicted anything
    assert losses.cross_entropy(logits, target).item() < 1e-3
    assert losses.dice(logits, target).item() < 0.05
    assert losses.jaccard(logits, target).item() < 0.05


def test_percentile_normalizer_handles_constant_and_nan():
    assert np.all(PercentileNormalizer(np.full((8, 8), 7, np.uint8))(np.full((8, 8), 7, np.uint8)) == 0)
    img = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    img[3, 3] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        PercentileNormalizer(img)


def test_crf_follows_image_edges():
    """Blurry probabilities across a sharp intensity edge are pulled to the edge."""
    image = np.zeros((40, 40), np.float32)
    image[:, 20:] = 1.0
    ramp = np.clip((np.arange(40) - 14) / 12, 0.05, 0.95)[None, :].repeat(40, 0)
    probs = np.stack([1 - ramp, ramp]).astype(np.float32)
    refined = dense_crf(probs, image, iterations=5)
    assert np.allclose(refined.sum(0), 1, atol=1e-5)
    before = (probs.argmax(0)[:, 20:] == 1).mean() + (probs.argmax(0)[:, :20] == 0).mean()
    after = (refined.argmax(0)[:, 20:] == 1).mean() + (refined.argmax(0)[:, :20] == 0).mean()
    assert after > before and after == pytest.approx(2.0)


def test_bilateral_filter_does_not_mix_across_intensity_edges():
    guide = np.zeros((30, 30), np.float32)
    guide[:, 15:] = 1
    values = guide[None].copy()
    out = bilateral_filter(values, guide, sigma_xy=10, sigma_intensity=0.1)
    assert out[0, :, :12].max() < 0.05 and out[0, :, 18:].min() > 0.95


@pytest.fixture
def tiny_model(tiny_semantic_weights):
    return tiny_semantic_weights


def test_inference_any_size_dtype_and_color(tiny_model):
    rng = np.random.default_rng(0)
    for image in (
        rng.integers(0, 255, (70, 130), dtype=np.uint8),
        rng.integers(0, 4095, (64, 64), dtype=np.uint16),
        rng.random((50, 40, 3)).astype(np.float32),
    ):
        labels, probs = segment_semantic(image, tiny_model, tile_size=64, overlap=16, return_probabilities=True)
        assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
        assert probs.shape == (3,) + image.shape[:2]
        np.testing.assert_allclose(probs.sum(0), 1, atol=1e-4)
        np.testing.assert_array_equal(labels, probs.argmax(0))


def test_inference_reports_progress_and_leaves_input_untouched(tiny_model):
    image = np.random.default_rng(1).integers(0, 255, (150, 150), dtype=np.uint8)
    copy = image.copy()
    steps = list(segment_semantic_steps(image, tiny_model, tile_size=64, overlap=16))
    assert steps[-1].done == steps[-1].total == 9
    np.testing.assert_array_equal(image, copy)


def test_constant_image_is_all_background(tiny_model):
    labels = segment_semantic(np.full((64, 64), 200, np.uint8), tiny_model)
    assert labels.shape == (64, 64) and not labels.any()


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((1, 1)), "at least"),
        (np.zeros((4, 4, 4, 4)), "2-D gray"),
        (np.array([[np.nan, 1.0], [0.0, 1.0]]), "NaN"),
    ],
)
def test_bad_input_gives_clear_message(tiny_model, bad, match):
    with pytest.raises(ImageError, match=match):
        segment_semantic(bad, tiny_model)


def test_mismatched_weights_are_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(
        build_model("2se-unet", width=4).state_dict(),
        path,
        {"task": "semantic", "architecture": "residual-se-unet", "classes": ["a", "b", "c"]},
    )
    with pytest.raises(RegistryError, match="do not fit"):
        load_semantic_model(str(path))


def test_cells_from_semantic_seeds_one_cell_per_nucleus():
    labels = np.zeros((40, 80), np.uint8)
    labels[5:35, 5:75] = 1  # two touching cells…
    labels[15:22, 15:22] = 2  # …each with a nucleus
    labels[15:22, 55:62] = 2
    cells, nuclei = cells_from_semantic(labels, min_nucleus_area=4)
    assert nuclei.max() == 2 and set(np.unique(cells)) == {0, 1, 2}
    assert cells[18, 18] == nuclei[18, 18] and cells[18, 58] == nuclei[18, 58] != cells[18, 18]


def test_cells_from_semantic_keeps_large_cells_without_nucleus_and_drops_specks():
    labels = np.zeros((60, 60), np.uint8)
    labels[5:25, 5:25] = 1  # 400 px of cytoplasm, its nucleus out of focus: a cell
    labels[40:45, 40:45] = 1  # a 25 px speck: no cell
    labels[0, 59] = 1
    labels[59, 2:58] = 1  # a 112 px rim, two pixels thin, along the image edge: no cell
    labels[58, 2:58] = 1
    labels[30:33, 30:58] = 1  # three pixels thick and 84 px: kept
    cells, nuclei = cells_from_semantic(labels)
    assert nuclei.max() == 0 and set(np.unique(cells)) == {0, 1, 2}
    assert (cells == 1).sum() == 400 and cells[42, 42] == 0 and cells[0, 59] == 0
    assert not cells[58:].any() and (cells[30:33, 30:58] == 2).all()


def test_the_scale_probe_of_the_image_as_it_is_is_reused_with_its_probabilities(monkeypatch):
    """An image the estimate leaves as it is goes through the network once at its own size, also when the
    caller wants probabilities (segment_instances' refinement and completion do), with the same result as
    a pass of its own."""
    import napari_cervix.semantic.inference as inference
    from napari_cervix.synth import generate_smear

    image = generate_smear((256, 256), n_cells=4, seed=5).image
    passes = []
    network_pass = inference._segment_as_is

    def counted(work, loaded, **options):
        passes.append(tuple(work.shape[:2]))
        return (yield from network_pass(work, loaded, **options))

    monkeypatch.setattr(inference, "_segment_as_is", counted)
    options = dict(precision="float32", return_probabilities=True)
    labels, probs, scale = segment_semantic(image, "unet-mobilenet_v2", return_scale=True, **options)
    assert not scale.resamples and passes.count((256, 256)) == 1 and len(passes) > 1  # the probes ran
    passes.clear()
    own_labels, own_probs = segment_semantic(image, "unet-mobilenet_v2", estimate_scale=False, **options)
    assert passes == [(256, 256)]
    np.testing.assert_array_equal(labels, own_labels)
    np.testing.assert_array_equal(probs, own_probs)


def test_edge_margin_reaches_every_pass_including_the_reused_scale_probe():
    from napari_cervix.synth import generate_smear

    image = generate_smear((256, 256), n_cells=4, seed=5).image
    for margin in (0, 16):
        plain = segment_semantic(image, "2se-unet", edge_margin=margin, precision="float32")  # the probe's labels
        _, probs = segment_semantic(
            image, "2se-unet", edge_margin=margin, precision="float32", return_probabilities=True
        )  # a pass of its own
        np.testing.assert_array_equal(plain, probs.argmax(0))
    bare = segment_semantic(image, "2se-unet", edge_margin=0, precision="float32")
    assert (bare != segment_semantic(image, "2se-unet", precision="float32")).any()
