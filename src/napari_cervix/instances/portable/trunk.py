"""The feature trunk of IMBMDCR-Net in plain torch: ResNeXt bottlenecks with DCNv2, and the FPN.

Module and parameter names are mmdet's (``backbone.layer2.0.conv2.conv_offset.weight``,
``neck.lateral_convs.0.conv.bias``...), so a state dict saved from the mmdet model loads here unchanged.
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from .config import Section

# Blocks per stage of each depth: mmdet's ResNet/ResNeXt table plus the lite presets' shallow entries
# (napari_cervix.instances.modules.CervixResNeXt).
STAGE_BLOCKS = {17: (1, 1, 2, 1), 26: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
TRUNK_DEPTHS = {"CervixResNeXt": tuple(STAGE_BLOCKS), "ResNeXt": (50, 101, 152), "ResNet": (50, 101, 152)}
DCN_TYPES = ("TVDCNv2", "DCNv2")  # ours on torchvision, mmcv's ModulatedDeformConv2dPack: same parameters


class ModulatedDeformConv2d(nn.Module):
    """DCNv2: a 3×3 conv of the input gives per-tap offsets and a modulation mask for the main conv.

    mmcv's layout: the offset conv's 3·k channels split in three; the first two thirds, concatenated, are
    the (dy, dx) pairs tap by tap — the layout ``torchvision.ops.deform_conv2d`` reads too — and the last
    third, through a sigmoid, is the mask.
    """

    def __init__(self, in_channels, out_channels, stride, padding, dilation, groups, deform_groups):
        super().__init__()
        self.stride, self.padding, self.dilation = (stride, stride), (padding, padding), (dilation, dilation)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, 3, 3))
        self.register_parameter("bias", None)  # bias=False in every ResNet bottleneck
        self.conv_offset = nn.Conv2d(
            in_channels, deform_groups * 3 * 9, 3, stride=stride, padding=padding, dilation=dilation, bias=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return modulated_deform_conv(self, x)


def modulated_deform_conv(layer, x: torch.Tensor) -> torch.Tensor:
    """DCNv2's forward in mmcv's layout on ``torchvision.ops.deform_conv2d``, for any layer with
    ``conv_offset``, ``weight``, ``bias``, ``stride``, ``padding`` and ``dilation`` (also the mmdet-side
    layer of ``instances/modules.py``, so both backends compute it one way)."""
    o1, o2, mask = torch.chunk(layer.conv_offset(x), 3, dim=1)
    return torchvision.ops.deform_conv2d(
        x,
        torch.cat((o1, o2), dim=1),
        layer.weight,
        layer.bias,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        mask=torch.sigmoid(mask),
    )


class Norm:
    """mmcv's ``build_norm_layer`` for the two norms the presets use, with its names (``bn1``, ``gn3``...)."""

    def __init__(self, cfg: Section):
        self.kind = cfg.expect("type", "BN", "GN")
        self.eps = float(cfg.get("eps", 1e-5))
        self.groups = int(cfg.get("num_groups")) if self.kind == "GN" else None
        cfg.get("momentum")  # running statistics are loaded, never updated here
        cfg.close()

    def name(self, postfix) -> str:
        return f"{self.kind.lower()}{postfix}"

    def __call__(self, channels: int) -> nn.Module:
        if self.kind == "GN":
            return nn.GroupNorm(self.groups, channels, eps=self.eps)
        return nn.BatchNorm2d(channels, eps=self.eps)


class Bottleneck(nn.Module):
    """mmdet's ResNeXt bottleneck, ``style='pytorch'``: 1×1, grouped 3×3 (stride here; DCNv2 when asked), 1×1."""

    expansion = 4

    def __init__(self, inplanes, planes, stride, groups, base_width, base_channels, norm: Norm, dcn, downsample):
        super().__init__()
        width = planes if groups == 1 else math.floor(planes * (base_width / base_channels)) * groups
        self.norm_names = [norm.name(k) for k in (1, 2, 3)]
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.add_module(self.norm_names[0], norm(width))
        if dcn is None:
            self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        else:
            self.conv2 = ModulatedDeformConv2d(width, width, stride, 1, 1, groups, dcn)
        self.add_module(self.norm_names[1], norm(width))
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.add_module(self.norm_names[2], norm(planes * self.expansion))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n1, n2, n3 = (getattr(self, name) for name in self.norm_names)
        out = F.relu(n1(self.conv1(x)))
        out = F.relu(n2(self.conv2(out)))
        out = n3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNeXtTrunk(nn.Module):
    """mmdet's ResNet/ResNeXt (7×7 stem, max-pool, four stages), every stage's output returned."""

    def __init__(self, cfg: Section):
        super().__init__()
        kind = cfg.expect("type", *TRUNK_DEPTHS)
        depth = cfg.expect("depth", *TRUNK_DEPTHS[kind])
        groups = int(cfg.get("groups", 1)) if kind != "ResNet" else 1
        base_width = int(cfg.get("base_width", 4)) if kind != "ResNet" else 4
        base_channels = int(cfg.get("base_channels", 64))
        stem_channels = int(cfg.get("stem_channels") or base_channels)
        cfg.expect("num_stages", 4, default=4)
        cfg.expect("out_indices", (0, 1, 2, 3), default=(0, 1, 2, 3))
        cfg.expect("strides", (1, 2, 2, 2), default=(1, 2, 2, 2))
        cfg.expect("dilations", (1, 1, 1, 1), default=(1, 1, 1, 1))
        cfg.expect("style", "pytorch", default="pytorch")
        cfg.expect("deep_stem", False, default=False)
        cfg.expect("avg_down", False, default=False)
        cfg.expect("conv_cfg", None)
        cfg.expect("plugins", None)
        norm = Norm(cfg.section("norm_cfg", {"type": "BN"}))
        dcn_cfg = cfg.get("dcn")
        stage_with_dcn = cfg.get("stage_with_dcn", (False,) * 4)
        with_dcn = stage_with_dcn if dcn_cfg is not None else (False,) * 4
        deform_groups = None
        if dcn_cfg is not None:
            dcn = Section(dcn_cfg, f"{cfg.path}.dcn")
            dcn.expect("type", *DCN_TYPES)
            dcn.expect("fallback_on_stride", False, default=False)
            deform_groups = int(dcn.get("deform_groups", 1))
            dcn.close()
        self.norm_name = norm.name(1)
        self.conv1 = nn.Conv2d(int(cfg.get("in_channels", 3)), stem_channels, 7, stride=2, padding=3, bias=False)
        self.add_module(self.norm_name, norm(stem_channels))
        inplanes = stem_channels
        self.stage_names = []
        for i, blocks in enumerate(STAGE_BLOCKS[depth]):
            planes, stride = base_channels * 2**i, 1 if i == 0 else 2
            layers = []
            for b in range(blocks):
                downsample = None
                if b == 0 and (stride != 1 or inplanes != planes * Bottleneck.expansion):
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                        norm(planes * Bottleneck.expansion),
                    )
                layers.append(
                    Bottleneck(
                        inplanes,
                        planes,
                        stride if b == 0 else 1,
                        groups,
                        base_width,
                        base_channels,
                        norm,
                        deform_groups if with_dcn[i] else None,
                        downsample,
                    )
                )
                inplanes = planes * Bottleneck.expansion
            self.stage_names.append(f"layer{i + 1}")
            self.add_module(self.stage_names[-1], nn.Sequential(*layers))
        self.out_channels = [base_channels * 2**i * Bottleneck.expansion for i in range(4)]
        cfg.close()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(getattr(self, self.norm_name)(self.conv1(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        outs = []
        for name in self.stage_names:
            x = getattr(self, name)(x)
            outs.append(x)
        return outs


class ConvModule(nn.Module):
    """mmcv's ConvModule without norm: a biased conv under ``.conv`` (the state dict's name), optional ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, relu=False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=True)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class FPN(nn.Module):
    """mmdet's FPN: 1×1 laterals, top-down nearest upsampling, 3×3 outputs, extra levels by 1×1 max-pool."""

    def __init__(self, cfg: Section, trunk_channels):
        super().__init__()
        cfg.expect("type", "FPN")
        in_channels = cfg.expect("in_channels", list(trunk_channels))
        out_channels = int(cfg.get("out_channels"))
        self.num_outs = int(cfg.get("num_outs"))
        cfg.expect("start_level", 0, default=0)
        cfg.expect("end_level", -1, len(in_channels) - 1, default=-1)
        cfg.expect("add_extra_convs", False, default=False)
        cfg.expect("relu_before_extra_convs", False, default=False)
        cfg.expect("no_norm_on_lateral", False, default=False)
        cfg.expect("conv_cfg", None)
        cfg.expect("norm_cfg", None)
        cfg.expect("act_cfg", None)
        cfg.expect("upsample_cfg", {"mode": "nearest"}, default={"mode": "nearest"})
        if self.num_outs < len(in_channels):
            raise ValueError(f"{cfg.path}.num_outs = {self.num_outs} is fewer than the trunk's levels")
        cfg.close()
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvModule(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        self.out_channels = out_channels

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[2:], mode="nearest"
            )
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs
