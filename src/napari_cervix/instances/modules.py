"""MMDetection modules of IMBMDCR-Net that mmdet 3.3 does not have; registered on import.

Importing this module imports mmdet and mmcv (with its compiled ops), so it is only ever imported
lazily, from :mod:`napari_cervix.instances.model`.

* :class:`TVModulatedDeformConv2dPack` — DCNv2 (learned offsets *and* modulation) on
  ``torchvision.ops.deform_conv2d``. Same parameters, names and output as mmcv's
  ``ModulatedDeformConv2dPack`` (checked in the tests), but it runs on any device torchvision
  supports and measured faster on CPU, where DCNv2 dominates a training step.
* :class:`TVRoIAlign` — RoIAlign on ``torchvision.ops.roi_align`` (mmcv's ``aligned=True`` semantics),
  again device-portable.
* :class:`CervixResNeXt` — mmdet's ResNeXt with more entries in its stage-depth table: mmdet only
  accepts depths 50/101/152, while the lite preset needs a shallower stack of the same bottleneck.
* :class:`LastStageMaskCascadeRoIHead` — Cascade R-CNN with *one* mask head fed by the last stage's
  boxes, as in the paper; mmdet's ``CascadeRoIHead`` builds a mask head per stage and averages them.
"""

from __future__ import annotations

import torch
import torchvision
from mmcv.cnn import ConvModule  # noqa: F401  (mmcv.cnn import registers the conv/norm layers)
from mmdet.models.backbones.resnext import Bottleneck as ResNeXtBottleneck
from mmdet.models.backbones.resnext import ResNeXt
from mmdet.models.roi_heads.cascade_roi_head import CascadeRoIHead
from mmdet.models.utils.misc import empty_instances, unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from mmengine.registry import MODELS as ROOT_MODELS
from torch import nn
from torch.nn.modules.utils import _pair


class TVModulatedDeformConv2dPack(nn.Module):
    """Modulated deformable convolution (DCNv2) whose offsets and mask come from a 3×3 conv of the input.

    Parameter names (``weight``, ``bias``, ``conv_offset.weight``/``bias``) match mmcv's
    ``ModulatedDeformConv2dPack`` so state dicts move between the two. ``conv_offset`` starts at zero,
    so a fresh layer is an ordinary (grouped) convolution with modulation 0.5 everywhere.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        deform_groups=1,
        bias=True,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deform_groups = deform_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        kh, kw = self.kernel_size
        self.conv_offset = nn.Conv2d(
            in_channels,
            deform_groups * 3 * kh * kw,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True,
        )
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from .portable.trunk import modulated_deform_conv

        return modulated_deform_conv(self, x)


class TVRoIAlign(nn.Module):
    """RoIAlign with mmcv's constructor and ``aligned=True`` pixel model, on torchvision's kernel."""

    def __init__(self, output_size, spatial_scale, sampling_ratio=0, pool_mode="avg", aligned=True):
        super().__init__()
        if pool_mode != "avg":
            raise ValueError("TVRoIAlign only averages (pool_mode='avg')")
        self.output_size = _pair(output_size)  # SingleRoIExtractor reads this attribute
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = aligned

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return torchvision.ops.roi_align(
            features, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned
        )


@MODELS.register_module()
class CervixResNeXt(ResNeXt):
    """ResNeXt (grouped-convolution bottlenecks) with shallow stage-depth entries for CPU presets.

    Widths come from ``base_channels``/``stem_channels``/``groups``/``base_width`` as in mmdet; only the
    number of blocks per stage is new. 17 = 3·(1+1+2+1)+2 layers, 26 = 3·(2+2+2+2)+2.
    """

    arch_settings = {
        17: (ResNeXtBottleneck, (1, 1, 2, 1)),
        26: (ResNeXtBottleneck, (2, 2, 2, 2)),
        **ResNeXt.arch_settings,
    }


@MODELS.register_module()
class LastStageMaskCascadeRoIHead(CascadeRoIHead):
    """Cascade R-CNN box stages with a single mask head on the last stage's boxes (IMBMDCR-Net).

    The mask head is trained on the last stage's samples (IoU ≥ its threshold, the best boxes) and at
    test time runs once on the final boxes. Its loss is weighted by ``mask_loss_weight`` rather than
    the last stage's box-loss weight (0.25 in the stock schedule), which would starve the only mask
    head of gradient.
    """

    def __init__(self, *args, mask_loss_weight: float = 1.0, **kwargs):
        self.mask_loss_weight = mask_loss_weight
        super().__init__(*args, **kwargs)

    def init_mask_head(self, mask_roi_extractor, mask_head) -> None:
        if mask_roi_extractor is None:
            raise ValueError("LastStageMaskCascadeRoIHead needs its own mask_roi_extractor (14×14)")
        if isinstance(mask_head, list) or isinstance(mask_roi_extractor, list):
            raise ValueError("LastStageMaskCascadeRoIHead takes one mask head config, not one per stage")
        self.share_roi_extractor = False
        self.mask_roi_extractor = MODELS.build(mask_roi_extractor)
        self.mask_head = MODELS.build(mask_head)

    def _mask_forward(self, x, rois) -> dict:  # no stage argument: there is one head
        feats = self.mask_roi_extractor(x[: self.mask_roi_extractor.num_inputs], rois)
        return dict(mask_preds=self.mask_head(feats))

    def mask_loss(self, x, sampling_results, batch_gt_instances) -> dict:
        pos_rois = bbox2roi([res.pos_priors for res in sampling_results])
        mask_results = self._mask_forward(x, pos_rois)
        mask_results.update(
            self.mask_head.loss_and_target(
                mask_preds=mask_results["mask_preds"],
                sampling_results=sampling_results,
                batch_gt_instances=batch_gt_instances,
                rcnn_train_cfg=self.train_cfg[-1],
            )
        )
        return mask_results

    def loss(self, x, rpn_results_list, batch_data_samples) -> dict:
        batch_gt_instances, batch_gt_instances_ignore, batch_img_metas = unpack_gt_instances(batch_data_samples)
        losses = {}
        results_list = rpn_results_list
        last = self.num_stages - 1
        for stage in range(self.num_stages):
            self.current_stage = stage
            weight = self.stage_loss_weights[stage]
            sampling_results = []
            for i in range(len(batch_data_samples)):
                results = results_list[i]
                results.priors = results.pop("bboxes")
                assign_result = self.bbox_assigner[stage].assign(
                    results, batch_gt_instances[i], batch_gt_instances_ignore[i]
                )
                sampling_results.append(
                    self.bbox_sampler[stage].sample(
                        assign_result, results, batch_gt_instances[i], feats=[level[i][None] for level in x]
                    )
                )
            bbox_results = self.bbox_loss(stage, x, sampling_results)
            for name, value in bbox_results["loss_bbox"].items():
                losses[f"s{stage}.{name}"] = value * weight if "loss" in name else value
            if stage == last:
                mask_results = self.mask_loss(x, sampling_results, batch_gt_instances)
                for name, value in mask_results["loss_mask"].items():
                    losses[name] = value * self.mask_loss_weight
            else:
                with torch.no_grad():
                    results_list = self.bbox_head[stage].refine_bboxes(sampling_results, bbox_results, batch_img_metas)
                if results_list is None:  # no proposals left: nothing for the later stages
                    break
        return losses

    def predict_mask(self, x, batch_img_metas, results_list, rescale: bool = False):
        mask_rois = bbox2roi([res.bboxes for res in results_list])
        if mask_rois.shape[0] == 0:
            return empty_instances(
                batch_img_metas,
                mask_rois.device,
                task_type="mask",
                instance_results=results_list,
                mask_thr_binary=self.test_cfg.mask_thr_binary,
            )
        mask_preds = self._mask_forward(x, mask_rois)["mask_preds"]
        mask_preds = mask_preds.split([len(res) for res in results_list], 0)
        return self.mask_head.predict_by_feat(
            mask_preds=mask_preds,
            results_list=results_list,
            batch_img_metas=batch_img_metas,
            rcnn_test_cfg=self.test_cfg,
            rescale=rescale,
        )

    def forward(self, x, rpn_results_list, batch_data_samples) -> tuple:
        """Tensor-mode forward (no post-processing): box stages, then the one mask head."""
        batch_img_metas = [sample.metainfo for sample in batch_data_samples]
        proposals = [res.bboxes for res in rpn_results_list]
        num_per_img = tuple(len(p) for p in proposals)
        rois, cls_scores, bbox_preds = self._refine_roi(x, bbox2roi(proposals), batch_img_metas, num_per_img)
        mask_preds = self._mask_forward(x, torch.cat(rois))["mask_preds"].split(num_per_img, 0)
        return cls_scores, bbox_preds, tuple(m.sigmoid() for m in mask_preds)


# Conv layers are looked up by mmcv's build_conv_layer in mmengine's root registry.
if "TVDCNv2" not in ROOT_MODELS.module_dict:
    ROOT_MODELS.register_module("TVDCNv2", module=TVModulatedDeformConv2dPack)


def use_portable_ops() -> None:
    """Route the two mmcv kernels mmdet calls directly (NMS, and RoIAlign for mask targets) to
    torchvision, so a detector runs on a GPU even when mmcv was built with CPU ops only (as this
    project builds it). The results are the same operations; CPU use does not need this.
    """
    import sys

    import mmcv.ops  # noqa: F401
    import mmdet.structures.mask  # noqa: F401

    # By module object: ``mmcv.ops.nms`` as an attribute is the nms *function*, which shadows its module.
    mmcv_nms = sys.modules["mmcv.ops.nms"]
    mask_structures = sys.modules["mmdet.structures.mask.structures"]

    def nms(boxes, scores, iou_threshold, offset=0, score_threshold=0, max_num=-1):
        if offset not in (0,):
            raise ValueError("torchvision NMS supports offset=0 only")
        valid = scores > score_threshold if score_threshold > 0 else None
        if valid is not None:
            boxes, scores = boxes[valid], scores[valid]
            index_map = torch.nonzero(valid).squeeze(1)
        keep = torchvision.ops.nms(boxes.float(), scores.float(), float(iou_threshold))
        if max_num > 0:
            keep = keep[:max_num]
        dets = torch.cat((boxes[keep], scores[keep].reshape(-1, 1)), dim=1)
        return dets, (index_map[keep] if valid is not None else keep)

    def roi_align(input, rois, output_size, spatial_scale=1.0, sampling_ratio=0, pool_mode="avg", aligned=True):
        return torchvision.ops.roi_align(input, rois, _pair(output_size), spatial_scale, sampling_ratio, aligned)

    mmcv_nms.nms = nms  # batched_nms looks the op up by name in this module
    mask_structures.roi_align = roi_align
