"""IMBMDCR-Net's test-time pass in plain torch: preprocessing, trunk, RPN, cascade, the one mask head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import Section
from .heads import BoxHead, MaskHead, RoIExtractor, RPNHead, batched_nms, nms_threshold, paste_masks
from .trunk import FPN, ResNeXtTrunk


class Preprocessor(nn.Module):
    """mmdet's ``DetDataPreprocessor`` at test time: channel flip if asked, (x − mean) / std, then padding
    at the bottom/right to ``pad_size_divisor`` with ``pad_value``."""

    def __init__(self, cfg: Section):
        super().__init__()
        cfg.expect("type", "DetDataPreprocessor")
        # Not persistent: mmdet registers them the same way, so the state dict has no such keys.
        self.register_buffer("mean", torch.tensor(cfg.get("mean")).view(-1, 1, 1), False)
        self.register_buffer("std", torch.tensor(cfg.get("std")).view(-1, 1, 1), False)
        self.flip_channels = bool(cfg.get("bgr_to_rgb", False)) or bool(cfg.get("rgb_to_bgr", False))
        self.size_divisor = int(cfg.get("pad_size_divisor", 1))
        self.pad_value = float(cfg.get("pad_value", 0))
        cfg.close()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """C × H × W → 1 × C × H' × W' (H', W' the next multiples of the divisor)."""
        if self.flip_channels:
            image = image[[2, 1, 0], ...]
        image = (image.float() - self.mean) / self.std
        h, w = image.shape[-2:]
        pad_h, pad_w = -h % self.size_divisor, -w % self.size_divisor
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), value=self.pad_value)
        return image[None]


def _per_stage(cfg: Section, key: str, stages: int) -> list[Section]:
    """A per-stage option given once (mmdet repeats it) or as one dict per stage."""
    value = cfg.get(key)
    values = list(value) if isinstance(value, (list, tuple)) else [value] * stages
    if len(values) != stages:
        raise ValueError(f"{cfg.path}.{key} has {len(values)} entries for {stages} stages")
    return [Section(v, f"{cfg.path}.{key}[{i}]") for i, v in enumerate(values)]


class LastStageMaskCascadeHead(nn.Module):
    """Cascade R-CNN box stages (each refines the previous stage's boxes; class logits averaged over the
    stages) and one mask head on the final boxes — IMBMDCR-Net's ``LastStageMaskCascadeRoIHead``."""

    def __init__(self, cfg: Section, test_cfg: Section):
        super().__init__()
        cfg.expect("type", "LastStageMaskCascadeRoIHead")
        stages = int(cfg.get("num_stages"))
        cfg.expect("shared_head", None)
        self.bbox_roi_extractor = nn.ModuleList(RoIExtractor(s) for s in _per_stage(cfg, "bbox_roi_extractor", stages))
        self.bbox_head = nn.ModuleList(BoxHead(s) for s in _per_stage(cfg, "bbox_head", stages))
        self.mask_roi_extractor = RoIExtractor(cfg.section("mask_roi_extractor"))
        self.mask_head = MaskHead(cfg.section("mask_head"))
        cfg.close()
        self.score_thr = float(test_cfg.get("score_thr", 0.05))
        self.max_per_img = int(test_cfg.get("max_per_img", 100))
        self.iou = nms_threshold(test_cfg.section("nms"))
        self.mask_threshold = test_cfg.expect("mask_thr_binary", 0.5, default=0.5)
        test_cfg.close()

    def forward(self, feats, proposals: torch.Tensor, img_shape, score_thr: float, max_per_img: int):
        """(masks K × H × W bool, scores K, labels K) of one image, by descending score."""
        height, width = img_shape
        empty = (
            torch.zeros(0, height, width, dtype=torch.bool, device=proposals.device),
            proposals.new_zeros(0),
            torch.zeros(0, dtype=torch.long, device=proposals.device),
        )
        if proposals.shape[0] == 0:
            return empty
        rois = torch.cat([proposals.new_zeros(len(proposals), 1), proposals], dim=1)
        stage_logits = []
        for stage, (extractor, head) in enumerate(zip(self.bbox_roi_extractor, self.bbox_head)):
            logits, deltas = head(extractor(feats, rois))
            stage_logits.append(logits)
            if stage < len(self.bbox_head) - 1:  # the class-agnostic regressor refines every box
                rois = torch.cat([rois[:, [0]], head.coder.decode(rois[:, 1:], deltas, img_shape)], dim=1)
        # mmdet averages the stages' logits (not their probabilities) and applies softmax once.
        scores = F.softmax(sum(stage_logits) / float(len(stage_logits)), dim=-1)
        boxes = self.bbox_head[-1].coder.decode(rois[:, 1:], deltas, img_shape)

        # mmdet's multiclass_nms: one candidate per (RoI, class) above the score floor, NMS per class.
        classes = scores.size(1) - 1
        boxes = boxes[:, None].expand(scores.size(0), classes, 4).reshape(-1, 4)
        labels = torch.arange(classes, dtype=torch.long, device=scores.device).view(1, -1).expand(scores.size(0), -1)
        scores, labels = scores[:, :-1].reshape(-1), labels.reshape(-1)
        inds = (scores > score_thr).nonzero(as_tuple=False).squeeze(1)
        boxes, scores, labels = boxes[inds], scores[inds], labels[inds]
        if boxes.numel() == 0:
            return empty
        keep = batched_nms(boxes, scores, labels, self.iou)
        if max_per_img > 0:
            keep = keep[:max_per_img]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]

        mask_rois = torch.cat([boxes.new_zeros(len(boxes), 1), boxes], dim=1)
        logits = self.mask_head(self.mask_roi_extractor(feats, mask_rois))
        probs = logits.sigmoid()[torch.arange(len(labels), device=labels.device), labels]
        return paste_masks(probs, boxes, height, width, self.mask_threshold), scores, labels


class CascadeMaskRCNN(nn.Module):
    """The whole detector, built from a stored mmdet model config (``model`` of a card's metadata); its
    state dict has the mmdet model's keys and shapes."""

    def __init__(self, model_cfg: dict):
        super().__init__()
        cfg = Section(model_cfg, "model")
        cfg.expect("type", "CascadeRCNN")
        self.data_preprocessor = Preprocessor(cfg.section("data_preprocessor"))
        self.backbone = ResNeXtTrunk(cfg.section("backbone"))
        self.neck = FPN(cfg.section("neck"), self.backbone.out_channels)
        test_cfg = cfg.section("test_cfg")
        self.rpn_head = RPNHead(cfg.section("rpn_head"), test_cfg.section("rpn"))
        self.roi_head = LastStageMaskCascadeHead(cfg.section("roi_head"), test_cfg.section("rcnn"))
        test_cfg.close()
        cfg.close()

    @torch.no_grad()
    def predict(self, image: torch.Tensor, score_thr: float | None = None, max_per_img: int | None = None):
        """One image (C × H × W, raw intensities) → (masks K × H × W bool, scores K, labels K), masks
        thresholded at ``mask_thr_binary``; ``score_thr``/``max_per_img`` override the config's."""
        img_shape = tuple(image.shape[-2:])
        feats = self.neck(self.backbone(self.data_preprocessor(image)))
        proposals = self.rpn_head(feats, img_shape)
        head = self.roi_head
        return head(
            feats,
            proposals,
            img_shape,
            head.score_thr if score_thr is None else float(score_thr),
            head.max_per_img if max_per_img is None else int(max_per_img),
        )
