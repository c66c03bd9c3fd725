"""The heads of IMBMDCR-Net in plain torch: RPN, RoI feature extraction, cascade box heads, mask head.

Each test-time step is written as mmdet 3.3 writes it (same operations in the same order and dtype), so
the two backends give the same numbers, not merely close ones: anchors as ``AnchorGenerator``, deltas as
``delta2bbox``, NMS as mmcv's ``batched_nms``, RoI level assignment as ``SingleRoIExtractor``, mask
pasting as ``FCNMaskHead._do_paste_mask``.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from .config import Section
from .trunk import ConvModule

MMCV_NMS_SPLIT = 10000  # mmcv's batched_nms: above this many boxes it runs one NMS per class


class DeltaCoder:
    """mmdet's ``DeltaXYWHBBoxCoder.decode`` (``delta2bbox``): deltas × stds + means applied to boxes, the
    log-size change clipped at |log(16/1000)|, boxes clipped to the image."""

    def __init__(self, cfg: Section):
        cfg.expect("type", "DeltaXYWHBBoxCoder")
        self.means = [float(v) for v in cfg.get("target_means", (0.0, 0.0, 0.0, 0.0))]
        self.stds = [float(v) for v in cfg.get("target_stds", (1.0, 1.0, 1.0, 1.0))]
        cfg.expect("clip_border", True, default=True)
        cfg.expect("add_ctr_clamp", False, default=False)
        cfg.get("ctr_clamp")  # only read with add_ctr_clamp
        cfg.close()

    def decode(self, boxes: torch.Tensor, deltas: torch.Tensor, max_shape) -> torch.Tensor:
        if deltas.size(0) == 0:
            return deltas
        means = deltas.new_tensor(self.means).view(1, -1)
        stds = deltas.new_tensor(self.stds).view(1, -1)
        denorm = deltas * stds + means
        dxy, dwh = denorm[:, :2], denorm[:, 2:]
        pxy = (boxes[:, :2] + boxes[:, 2:]) * 0.5
        pwh = boxes[:, 2:] - boxes[:, :2]
        max_ratio = np.abs(np.log(16 / 1000))
        dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
        gxy = pxy + pwh * dxy
        gwh = pwh * dwh.exp()
        out = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
        out[..., 0::2].clamp_(min=0, max=max_shape[1])
        out[..., 1::2].clamp_(min=0, max=max_shape[0])
        return out


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices kept by NMS, by descending score, in mmcv's order: mmcv ranks the boxes with torch's
    default (unstable) sort, torchvision with a stable one, and equal scores (saturated sigmoids are
    common in the RPN) then suppress each other the other way round. Ranking first with mmcv's sort
    and handing torchvision boxes already in that order makes both keep the same boxes."""
    order = scores.sort(descending=True)[1]
    return order[torchvision.ops.nms(boxes[order], scores[order], float(iou_threshold))]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float):
    """Indices kept by NMS within each group, by descending score, as mmcv's ``batched_nms`` keeps them.

    mmcv shifts each group's boxes apart and runs one NMS; the shifted coordinates round differently from
    the raw ones, so an IoU next to the threshold can fall on either side. Doing the same shift here keeps
    the two backends' choices identical. Above 10000 boxes mmcv runs one NMS per group and re-sorts.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if boxes.shape[0] < MMCV_NMS_SPLIT:
        offsets = groups.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
        return nms(boxes + offsets[:, None], scores, iou_threshold)
    kept = torch.zeros_like(scores, dtype=torch.bool)
    for group in torch.unique(groups):
        members = (groups == group).nonzero(as_tuple=False).view(-1)
        kept[members[nms(boxes[members], scores[members], iou_threshold)]] = True
    keep = kept.nonzero(as_tuple=False).view(-1)
    return keep[scores[keep].sort(descending=True)[1]]


def nms_threshold(cfg: Section) -> float:
    cfg.expect("type", "nms")
    threshold = float(cfg.get("iou_threshold"))
    cfg.expect("class_agnostic", False, default=False)
    cfg.close()
    return threshold


class Anchors:
    """mmdet's ``AnchorGenerator`` (``center_offset=0``, scale-major): per level, every anchor of every
    feature-map cell, in the (row, column, anchor) order of the RPN's flattened outputs."""

    def __init__(self, cfg: Section):
        cfg.expect("type", "AnchorGenerator")
        self.strides = [int(s) for s in cfg.get("strides")]
        ratios = torch.Tensor(cfg.get("ratios"))
        scales = torch.Tensor(cfg.get("scales"))
        cfg.expect("base_sizes", None)
        cfg.expect("scale_major", True, default=True)
        cfg.expect("center_offset", 0.0, default=0.0)
        cfg.expect("centers", None)
        cfg.expect("octave_base_scale", None)
        cfg.expect("scales_per_octave", None)
        cfg.close()
        h_ratios = torch.sqrt(ratios)
        w_ratios = 1 / h_ratios
        self.base = []
        for size in self.strides:
            ws = (size * w_ratios[:, None] * scales[None, :]).view(-1)
            hs = (size * h_ratios[:, None] * scales[None, :]).view(-1)
            self.base.append(torch.stack([0.0 - 0.5 * ws, 0.0 - 0.5 * hs, 0.0 + 0.5 * ws, 0.0 + 0.5 * hs], dim=-1))
        self.per_cell = len(ratios) * len(scales)

    def grid(self, level: int, height: int, width: int, device) -> torch.Tensor:
        stride = self.strides[level]
        shift_x = torch.arange(0, width, device=device).to(torch.float32) * stride
        shift_y = torch.arange(0, height, device=device).to(torch.float32) * stride
        xx = shift_x.repeat(shift_y.shape[0])
        yy = shift_y.view(-1, 1).repeat(1, shift_x.shape[0]).view(-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=-1)
        return (self.base[level].to(device)[None, :, :] + shifts[:, None, :]).view(-1, 4)


class RPNHead(nn.Module):
    """mmdet's ``RPNHead``: 3×3 conv + ReLU, sigmoid objectness and box deltas per anchor; proposals
    are the top ``nms_pre`` anchors per level, decoded, NMS'd within each level, capped at ``max_per_img``."""

    def __init__(self, cfg: Section, test_cfg: Section):
        super().__init__()
        cfg.expect("type", "RPNHead")
        in_channels, feat_channels = int(cfg.get("in_channels")), int(cfg.get("feat_channels", 256))
        cfg.expect("num_convs", 1, default=1)
        Section(cfg.get("loss_cls") or {}, f"{cfg.path}.loss_cls").expect("use_sigmoid", True)
        self.anchors = Anchors(cfg.section("anchor_generator"))
        self.coder = DeltaCoder(cfg.section("bbox_coder"))
        cfg.expect("reg_decoded_bbox", False, default=False)
        cfg.close()
        self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(feat_channels, self.anchors.per_cell, 1)
        self.rpn_reg = nn.Conv2d(feat_channels, self.anchors.per_cell * 4, 1)
        self.nms_pre = int(test_cfg.get("nms_pre", -1))
        self.max_per_img = int(test_cfg.get("max_per_img"))
        self.min_bbox_size = float(test_cfg.get("min_bbox_size", -1))
        self.iou = nms_threshold(test_cfg.section("nms"))
        test_cfg.close()

    def forward(self, feats: list[torch.Tensor], img_shape) -> torch.Tensor:
        """Proposals (P × 4, x1 y1 x2 y2) of one image (batch of 1)."""
        boxes, priors, scores, levels = [], [], [], []
        for level, x in enumerate(feats):
            x = F.relu(self.rpn_conv(x))
            cls_score, bbox_pred = self.rpn_cls(x)[0], self.rpn_reg(x)[0]
            level_priors = self.anchors.grid(level, x.shape[-2], x.shape[-1], x.device)
            bbox_pred = bbox_pred.permute(1, 2, 0).reshape(-1, 4)
            level_scores = torch.squeeze(cls_score.permute(1, 2, 0).reshape(-1, 1).sigmoid())
            if 0 < self.nms_pre < level_scores.shape[0]:
                level_scores, rank = level_scores.sort(descending=True)
                top = rank[: self.nms_pre]
                level_scores = level_scores[: self.nms_pre]
                bbox_pred, level_priors = bbox_pred[top, :], level_priors[top]
            boxes.append(bbox_pred)
            priors.append(level_priors)
            scores.append(level_scores)
            levels.append(level_scores.new_full((level_scores.size(0),), level, dtype=torch.long))
        proposals = self.coder.decode(torch.cat(priors), torch.cat(boxes), img_shape)
        scores, levels = torch.cat(scores), torch.cat(levels)
        if self.min_bbox_size >= 0:
            w, h = proposals[:, 2] - proposals[:, 0], proposals[:, 3] - proposals[:, 1]
            valid = (w > self.min_bbox_size) & (h > self.min_bbox_size)
            if not valid.all():
                proposals, scores, levels = proposals[valid], scores[valid], levels[valid]
        keep = batched_nms(proposals, scores, levels, self.iou)
        return proposals[keep][: self.max_per_img]


class RoIExtractor(nn.Module):
    """mmdet's ``SingleRoIExtractor``: each RoI pooled (torchvision RoIAlign, mmcv's ``aligned=True``) from
    the pyramid level its size picks, ⌊log2(√area / finest_scale)⌋."""

    ROI_LAYERS = ("TVRoIAlign", "RoIAlign")  # ours on torchvision and mmcv's: the same operation

    def __init__(self, cfg: Section):
        super().__init__()
        cfg.expect("type", "SingleRoIExtractor")
        layer = cfg.section("roi_layer")
        layer.expect("type", *self.ROI_LAYERS)
        size = layer.get("output_size")
        self.output_size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)
        self.sampling_ratio = int(layer.get("sampling_ratio", 0))
        layer.expect("pool_mode", "avg", default="avg")
        layer.expect("aligned", True, default=True)
        layer.close()
        self.out_channels = int(cfg.get("out_channels"))
        self.strides = [int(s) for s in cfg.get("featmap_strides")]
        self.finest_scale = int(cfg.get("finest_scale", 56))
        cfg.close()

    def forward(self, feats: list[torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        feats = feats[: len(self.strides)]
        rois = rois.type_as(feats[0])
        out = feats[0].new_zeros(rois.size(0), self.out_channels, *self.output_size)
        scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
        levels = torch.floor(torch.log2(scale / self.finest_scale + 1e-6)).clamp(min=0, max=len(feats) - 1).long()
        for i, (x, stride) in enumerate(zip(feats, self.strides)):
            inds = (levels == i).nonzero(as_tuple=False).squeeze(1)
            if inds.numel() > 0:
                out[inds] = torchvision.ops.roi_align(
                    x, rois[inds], self.output_size, 1.0 / stride, self.sampling_ratio, True
                )
        return out


class BoxHead(nn.Module):
    """mmdet's ``Shared2FCBBoxHead`` with a class-agnostic regressor: two shared FCs, then class logits
    (classes + background) and one box delta per RoI."""

    def __init__(self, cfg: Section):
        super().__init__()
        cfg.expect("type", "Shared2FCBBoxHead")
        in_channels, size = int(cfg.get("in_channels")), int(cfg.get("roi_feat_size", 7))
        fc_channels = int(cfg.get("fc_out_channels", 1024))
        self.num_classes = int(cfg.get("num_classes"))
        cfg.expect("reg_class_agnostic", True)
        cfg.expect("with_avg_pool", False, default=False)
        cfg.expect("reg_decoded_bbox", False, default=False)
        cfg.expect("predict_box_type", "hbox", default="hbox")
        Section(cfg.get("loss_cls") or {}, f"{cfg.path}.loss_cls").expect("use_sigmoid", False, default=False)
        self.coder = DeltaCoder(cfg.section("bbox_coder"))
        cfg.close()
        self.shared_fcs = nn.ModuleList(
            [nn.Linear(in_channels * size * size, fc_channels), nn.Linear(fc_channels, fc_channels)]
        )
        self.fc_cls = nn.Linear(fc_channels, self.num_classes + 1)
        self.fc_reg = nn.Linear(fc_channels, 4)

    def forward(self, x: torch.Tensor):
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = F.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)


class MaskHead(nn.Module):
    """mmdet's ``FCNMaskHead``: 3×3 convs + ReLU, a 2× deconv + ReLU, one mask logit map per class."""

    def __init__(self, cfg: Section):
        super().__init__()
        cfg.expect("type", "FCNMaskHead")
        num_convs = int(cfg.get("num_convs", 4))
        in_channels, channels = int(cfg.get("in_channels", 256)), int(cfg.get("conv_out_channels", 256))
        cfg.expect("conv_kernel_size", 3, default=3)
        cfg.expect("roi_feat_size", 14, default=14)
        cfg.expect("upsample_cfg", {"type": "deconv", "scale_factor": 2}, default={"type": "deconv", "scale_factor": 2})
        cfg.expect("class_agnostic", False, default=False)
        cfg.expect("conv_cfg", None)
        cfg.expect("norm_cfg", None)
        cfg.expect("predictor_cfg", {"type": "Conv"}, default={"type": "Conv"})
        self.num_classes = int(cfg.get("num_classes"))
        cfg.close()
        self.convs = nn.ModuleList(
            ConvModule(in_channels if i == 0 else channels, channels, 3, padding=1, relu=True) for i in range(num_convs)
        )
        self.upsample = nn.ConvTranspose2d(channels if num_convs else in_channels, channels, 2, stride=2)
        self.conv_logits = nn.Conv2d(channels, self.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
        return self.conv_logits(F.relu(self.upsample(x)))


def paste_masks(probs: torch.Tensor, boxes: torch.Tensor, height: int, width: int, threshold: float) -> torch.Tensor:
    """Per-box mask probabilities (N × m × m) resampled into the image and thresholded (N × H × W bool).

    As ``FCNMaskHead._do_paste_mask``: the mask grid is stretched over the box (``grid_sample``,
    ``align_corners=False``); on CPU mmdet pastes one box at a time, only over the box and one pixel
    around it, elsewhere over the whole image (values reaching past the box differ between the two), so
    this does the same per device.
    """
    out = torch.zeros(len(probs), height, width, dtype=torch.bool, device=probs.device)
    whole_image = probs.device.type != "cpu"
    for k in range(len(probs)):
        box = boxes[k : k + 1]
        if whole_image:
            x0, y0, x1, y1 = 0, 0, width, height
        else:
            x0, y0 = (int(v) for v in torch.clamp(box.min(dim=0).values.floor()[:2] - 1, min=0).to(torch.int32))
            x1 = int(torch.clamp(box[:, 2].max().ceil() + 1, max=width).to(torch.int32))
            y1 = int(torch.clamp(box[:, 3].max().ceil() + 1, max=height).to(torch.int32))
        bx0, by0, bx1, by1 = torch.split(box, 1, dim=1)
        img_y = torch.arange(y0, y1, device=probs.device).to(torch.float32) + 0.5
        img_x = torch.arange(x0, x1, device=probs.device).to(torch.float32) + 0.5
        img_y = (img_y - by0) / (by1 - by0) * 2 - 1
        img_x = (img_x - bx0) / (bx1 - bx0) * 2 - 1
        img_x[torch.isinf(img_x)] = 0  # a zero-width box
        img_y[torch.isinf(img_y)] = 0
        gx = img_x[:, None, :].expand(1, img_y.size(1), img_x.size(1))
        gy = img_y[:, :, None].expand(1, img_y.size(1), img_x.size(1))
        grid = torch.stack([gx, gy], dim=3)
        pasted = F.grid_sample(probs[k : k + 1, None].to(torch.float32), grid, align_corners=False)[:, 0]
        out[k, y0:y1, x0:x1] = pasted[0] >= threshold
    return out
