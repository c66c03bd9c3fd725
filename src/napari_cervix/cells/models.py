"""The CNN classifiers (torch): LD/ResNet (paper 000) and mask + image fusion with GAP (paper 002).

Both are small ResNets sized for ~96 px single-cell crops so they train from scratch on Herlev in minutes
on a GPU (and still on a CPU) and run on hundreds of cells per second at inference. Every network starts
with a per-sample standardization of its input, so gray Herlev crops and gray ISBI smear crops (whose
intensity scales differ) look alike to it.

The **local discriminant loss** follows paper 000 (and the mutual-channel loss it builds on):
``L = L_ce + β · (L_dis + τ · L_div)`` with β = 1.5, τ = 20. The last feature map has ``ξ`` channels per
class (class-grouped channels). ``L_dis``: during training half of each group's channels are dropped at
random (the channel attention), the group is reduced by cross-channel max pooling and global average
pooling to one logit per class, and cross-entropy is taken on those logits — each class's own channels
must be discriminative. ``L_div``: each channel is turned into a spatial softmax, the group is reduced by
cross-channel max pooling and summed over space, giving the group's diversity ``D ∈ [1, ξ]``;
``L_div = 1 − mean(D)/ξ`` rewards channels that look at different parts of the cell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Standardize(nn.Module):
    """Per-sample zero mean / unit variance (robust to each source's intensity scale).

    ``per_channel=True`` standardizes every channel on its own; for color input that erases the stain's
    hue (a pink and a blue cell look alike), so color models standardize all channels together
    (``per_channel=False``), which keeps the channels' ratios.
    """

    def __init__(self, per_channel: bool = True):
        super().__init__()
        self.per_channel = per_channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = (2, 3) if self.per_channel else (1, 2, 3)
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True)
        return (x - mean) / (std + 1e-4)


class BasicBlock(nn.Module):
    """Deep residual learning block: two 3×3 conv + BN, identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetTrunk(nn.Module):
    """Stem (stride 2) + stages of BasicBlocks; output stride 8 for three stages."""

    def __init__(self, in_channels: int, widths=(32, 64, 128), blocks: int = 2, per_channel: bool = True):
        super().__init__()
        self.standardize = Standardize(per_channel)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        stages, cin = [], widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            stages.append(
                nn.Sequential(
                    *[BasicBlock(cin if b == 0 else width, width, stride if b == 0 else 1) for b in range(blocks)]
                )
            )
            cin = width
        self.stages = nn.Sequential(*stages)
        self.out_channels = widths[-1]

    def forward(self, x):
        return self.stages(self.stem(self.standardize(x)))


class LDResNet(nn.Module):
    """ResNet whose last map has ``channels_per_class`` channels per class, for the LD loss.

    ``forward`` returns ``(logits, grouped_map)``; ``logits`` (from GAP + linear, the cross-entropy head)
    are what inference uses; ``grouped_map`` (B × classes·ξ × h × w) feeds :func:`ld_loss` in training.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 7,
        widths=(32, 64, 128),
        blocks: int = 2,
        channels_per_class: int = 16,
        dropout: float = 0.2,
        per_channel: bool = True,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.channels_per_class = channels_per_class
        self.trunk = ResNetTrunk(in_channels, widths, blocks, per_channel)
        grouped = num_classes * channels_per_class
        self.group_conv = nn.Sequential(
            nn.Conv2d(self.trunk.out_channels, grouped, 1, bias=False), nn.BatchNorm2d(grouped), nn.ReLU(inplace=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(grouped, num_classes)
        self.feature_dim = grouped

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Deep features (GAP of the class-grouped map), B × classes·ξ — used by the feature-fusion model."""
        return self.group_conv(self.trunk(x)).mean(dim=(2, 3))

    def forward(self, x):
        grouped = self.group_conv(self.trunk(x))
        logits = self.fc(self.dropout(grouped.mean(dim=(2, 3))))
        return logits, grouped


def ld_loss(
    grouped: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    channels_per_class: int,
    *,
    tau: float = 20.0,
    drop_fraction: float = 0.5,
    generator: torch.Generator | None = None,
):
    """Local discriminant loss ``L_dis + τ·L_div`` over class-grouped channels (see the module docstring).

    Returns ``(total, discriminative, diversity)`` so training can log the parts.
    """
    batch, channels, height, width = grouped.shape
    xi = channels_per_class
    if channels != num_classes * xi:
        raise ValueError(f"grouped map has {channels} channels, expected {num_classes}×{xi}")
    # Channel attention: drop a random half of every group's channels (same mask for the whole batch
    # is enough for regularization and keeps it cheap), rescaled like dropout.
    keep = torch.ones(num_classes, xi, device=grouped.device)
    n_drop = int(round(drop_fraction * xi))
    if n_drop:
        scores = torch.rand(num_classes, xi, device=grouped.device, generator=generator)
        dropped = scores.argsort(dim=1)[:, :n_drop]
        keep.scatter_(1, dropped, 0.0)
    masked = grouped.view(batch, num_classes, xi, height, width) * keep.view(1, num_classes, xi, 1, 1)
    class_logits = masked.amax(dim=2).mean(dim=(2, 3))  # cross-channel max pooling, then GAP
    discriminative = F.cross_entropy(class_logits, target)

    spatial = F.softmax(grouped.view(batch, channels, height * width), dim=2)
    per_group = spatial.view(batch, num_classes, xi, height * width).amax(dim=2).sum(dim=2)  # D ∈ [1, ξ]
    diversity = 1.0 - per_group.mean() / xi
    return discriminative + tau * diversity, discriminative, diversity


class MaskFusionNet(nn.Module):
    """Paper 002, proposed model 2: image branch + segmentation-mask branch, each GAP-pooled, then dense.

    Input: ``image`` B × C × H × W and ``mask`` B × 2 × H × W (one-hot cytoplasm, nucleus). Output: logits
    over the Bethesda groups (benign, L-SIL, H-SIL). The mask branch is a smaller ResNet: the mask has
    far less to describe than the image (shape and size of nucleus and cytoplasm).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 3,
        widths=(32, 64, 128),
        mask_widths=(16, 32, 64),
        blocks: int = 2,
        dropout: float = 0.3,
        per_channel: bool = True,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.image_branch = ResNetTrunk(in_channels, widths, blocks, per_channel)
        self.mask_branch = ResNetTrunk(2, mask_widths, 1)
        self.mask_branch.standardize = nn.Identity()  # masks are already 0/1
        fused = self.image_branch.out_channels + self.mask_branch.out_channels
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(fused, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(128, num_classes),
        )
        self.feature_dim = fused

    def features(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.image_branch(image).mean(dim=(2, 3)), self.mask_branch(mask).mean(dim=(2, 3))], 1)

    def forward(self, image, mask):
        return self.classifier(self.features(image, mask))
