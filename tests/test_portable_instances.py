"""The torch-only backend of the instance model (napari_cervix.instances.portable): the same detections as
the mmdet/mmcv path on fixed generated images, DCNv2 equal to mmcv's op, clear refusal of configs it does
not implement, and a run with mmcv, mmdet and mmengine made unimportable. The comparisons with mmdet are
skipped only where mmdet/mmcv's ops are not importable."""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_cervix.instances import segment_instances
from napari_cervix.instances.model import (
    InstancesUnavailable,
    load_detector,
    mmdet_available,
    on_backend,
    prepare_gray,
)
from napari_cervix.instances.portable import CascadeMaskRCNN, UnsupportedConfig
from napari_cervix.instances.portable.agreement import result_agreement, tile_agreement
from napari_cervix.registry import load_state_dict, read_metadata, resolve, save_weights
from napari_cervix.synth import generate_smear
from napari_cervix.tiling import tile_grid

torch.set_num_threads(2)
needs_mmdet = pytest.mark.skipif(not mmdet_available(), reason="mmdet / mmcv's compiled ops not importable")

# The acceptance bar for "the same detections".
MIN_IOU, MAX_SCORE_DIFF = 0.99, 1e-3


def shipped_path():
    return resolve("default", task="instances")[0]


def shipped_meta():
    return read_metadata(shipped_path())


@pytest.fixture(scope="module")
def torch_lite():
    return load_detector("default", backend="torch")


def assert_same_detections(figures):
    assert figures["count_equal"] and figures["unmatched"] == 0, figures
    assert figures["min_iou"] >= MIN_IOU and figures["max_score_diff"] <= MAX_SCORE_DIFF, figures


def test_default_backend_is_the_torch_path_and_loads_the_shipped_weights_unchanged(torch_lite):
    assert torch_lite.backend == "torch" and load_detector("default").backend == "torch"
    assert isinstance(torch_lite.module, CascadeMaskRCNN)
    stored = load_state_dict(shipped_path())
    own = torch_lite.module.state_dict()
    assert set(own) == set(stored)  # the mmdet model's keys, nothing renamed or added
    assert all(torch.equal(own[k], stored[k].float()) for k in stored)


@needs_mmdet
@pytest.mark.parametrize(
    "shape, cells, radius, seed",
    [((256, 256), (3, 6), (40, 90), 3), ((320, 448), (4, 6), (40, 90), 11), ((40, 30), 1, (8, 12), 0)],
)
def test_shipped_model_tiles_give_the_mmdet_detections(torch_lite, shape, cells, radius, seed):
    """Whole tiles, tiles cut at the image border (not multiples of 32) and a tile padded to the minimum."""
    mmdet_lite = load_detector("default", backend="mmdet")
    image = prepare_gray(generate_smear(shape, n_cells=cells, cell_radius=radius, seed=seed).image)
    for tile in tile_grid(image.shape, 256, 64):
        ours = torch_lite.predict_tile(image[tile.slices], score_floor=0.05)
        theirs = mmdet_lite.predict_tile(image[tile.slices], score_floor=0.05)
        assert len(ours[1]) == len(theirs[1]) and np.array_equal(ours[2], theirs[2])
        assert_same_detections(tile_agreement(ours, theirs, torch_lite.classes))


@needs_mmdet
def test_tiled_segmentation_gives_the_mmdet_result(torch_lite):
    sample = generate_smear((384, 512), n_cells=(6, 8), seed=21)
    # Tiles of 256 with overlap: several passes, cells cut by tile borders merged.
    ours = segment_instances(sample.image, torch_lite, score_threshold=0.05, tile_size=256, overlap=64)
    theirs = segment_instances(
        sample.image, "default", score_threshold=0.05, tile_size=256, overlap=64, backend="mmdet"
    )
    assert ours.meta["backend"] == "torch" and theirs.meta["backend"] == "mmdet"
    assert ours.meta["tiles"] > 1 and len(ours) > 0
    assert_same_detections(result_agreement(ours, theirs))
    np.testing.assert_array_equal(ours.cell_labels(), theirs.cell_labels())


@needs_mmdet
def test_full_preset_on_the_torch_path_equals_mmdet():
    """The paper's ResNeXt-101 64x4d (BatchNorm, 64-group DCNv2 incl. its stride-2 blocks), random weights
    moved from the mmdet model to the torch one."""
    torch.manual_seed(0)
    mmdet_full = load_detector("preset:full", backend="mmdet")
    torch_full = on_backend(mmdet_full, "torch")
    assert torch_full.backend == "torch" and torch_full.num_parameters == mmdet_full.num_parameters
    image = prepare_gray(generate_smear((128, 128), n_cells=2, seed=0).image)
    ours = torch_full.predict_tile(image, score_floor=0.0, max_detections=20)
    theirs = mmdet_full.predict_tile(image, score_floor=0.0, max_detections=20)
    assert len(theirs[1]) > 0
    assert_same_detections(tile_agreement(ours, theirs, torch_full.classes))


@needs_mmdet
def test_dcnv2_on_torchvision_equals_mmcv_modulated_deform_conv():
    from mmcv.ops import ModulatedDeformConv2dPack

    from napari_cervix.instances.portable.trunk import ModulatedDeformConv2d

    torch.manual_seed(0)
    for stride, groups in ((1, 4), (2, 8)):
        ref = ModulatedDeformConv2dPack(16, 16, 3, stride=stride, padding=1, groups=groups, bias=False)
        torch.nn.init.normal_(ref.conv_offset.weight, std=0.1)  # offsets and masks far from their zero init
        torch.nn.init.normal_(ref.conv_offset.bias, std=0.5)
        ours = ModulatedDeformConv2d(16, 16, stride, 1, 1, groups, 1)
        ours.load_state_dict(ref.state_dict())
        x = torch.rand(2, 16, 21, 19)
        with torch.no_grad():
            assert torch.allclose(ref(x), ours(x), atol=1e-5)


def test_configs_the_torch_path_does_not_implement_are_refused_naming_the_key():
    model = shipped_meta()["model"]
    caffe = copy.deepcopy(model)
    caffe["backbone"]["style"] = "caffe"
    with pytest.raises(UnsupportedConfig, match=r"model\.backbone\.style = 'caffe'"):
        CascadeMaskRCNN(caffe)
    unknown = copy.deepcopy(model)
    unknown["neck"]["add_extra_convs"] = "on_output"
    with pytest.raises(UnsupportedConfig, match=r"model\.neck\.add_extra_convs"):
        CascadeMaskRCNN(unknown)
    per_stage_masks = copy.deepcopy(model)
    per_stage_masks["roi_head"]["type"] = "CascadeRoIHead"  # mmdet's stock head: a mask head per stage
    with pytest.raises(UnsupportedConfig, match=r"model\.roi_head\.type"):
        CascadeMaskRCNN(per_stage_masks)
    extra = copy.deepcopy(model)
    extra["rpn_head"]["num_convs"] = 2
    extra["rpn_head"]["some_new_option"] = 1
    with pytest.raises(UnsupportedConfig, match=r"model\.rpn_head\.num_convs"):
        CascadeMaskRCNN(extra)
    del extra["rpn_head"]["num_convs"]
    with pytest.raises(UnsupportedConfig, match=r"model\.rpn_head\.some_new_option"):
        CascadeMaskRCNN(extra)


def test_auto_backend_falls_back_to_mmdet_only_for_configs_the_torch_path_refuses(torch_lite, tmp_path):
    meta = shipped_meta()
    meta["model"]["neck"]["upsample_cfg"] = {"scale_factor": 2, "mode": "nearest"}  # same weights, other op
    path = tmp_path / "other-upsampling.safetensors"
    save_weights(torch_lite.module.state_dict(), path, meta)
    with pytest.raises(UnsupportedConfig, match="upsample_cfg"):
        load_detector(str(path), backend="torch")
    if mmdet_available():
        assert load_detector(str(path)).backend == "mmdet"
    else:
        with pytest.raises(UnsupportedConfig):
            load_detector(str(path))


BLOCKED_RUN = """
import json, sys
for name in ("mmcv", "mmdet", "mmengine"):
    sys.modules[name] = None  # any import of them now raises ImportError
import numpy as np
from napari_cervix import demo
from napari_cervix.instances import segment_instances
from napari_cervix.instances.model import InstancesUnavailable, load_detector
from napari_cervix.synth import generate_smear

result = segment_instances(generate_smear((384, 512), n_cells=(6, 8), seed=21).image, tile_size=256, overlap=64)
try:
    load_detector("default", backend="mmdet")
    refused = ""
except InstancesUnavailable as err:
    refused = str(err)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("mmcv", "mmdet", "mmengine") and sys.modules[m])
print(json.dumps({"backend": result.meta["backend"], "scores": result.scores.tolist(),
                  "labels": result.cell_labels().tolist(), "refused": refused, "loaded": loaded,
                  "demo_reason": demo._instances_unavailable_reason()}))
"""


def test_torch_path_runs_with_mmcv_mmdet_and_mmengine_unimportable(torch_lite):
    run = subprocess.run([sys.executable, "-c", BLOCKED_RUN], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["backend"] == "torch" and report["loaded"] == []
    assert "mmengine" in report["refused"]  # asking for mmdet says what is missing
    assert report["demo_reason"] is None  # the demo uses the instance model
    here = segment_instances(
        generate_smear((384, 512), n_cells=(6, 8), seed=21).image, torch_lite, tile_size=256, overlap=64
    )
    assert len(here) > 0
    np.testing.assert_allclose(report["scores"], here.scores, atol=1e-6)
    np.testing.assert_array_equal(np.array(report["labels"]), here.cell_labels())


def test_backend_choice_is_checked_before_anything_loads():
    with pytest.raises(ValueError, match="unknown backend"):
        segment_instances(np.zeros((64, 64), np.uint8), backend="tensorrt")
    if not mmdet_available():
        with pytest.raises(InstancesUnavailable):
            load_detector("default", backend="mmdet")
