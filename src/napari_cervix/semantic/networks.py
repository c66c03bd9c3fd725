"""The semantic networks written here (the U-Net family comes from segmentation-models-pytorch):

* ``residual-se-unet`` (paper 004): residual blocks (two 3×3 conv + BN + ReLU, identity skip) each
  followed by squeeze-excitation, stride-2 convolutions instead of pooling, four down stages, a bridge
  and four up stages.
* ``2se-unet`` (paper 000): U-Net-style encoder whose max-pooling keeps its indices, a decoder that
  restores resolution by SegNet max-unpooling *and* concatenates the U-Net skip, SE modules, softmax.

Built by name through their kinds (:mod:`napari_cervix.kinds`), e.g. ``semantic.models.build_model``.
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Channel gating: global average → FC (reduce) → ReLU → FC → sigmoid → rescale channels."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.gate(x)


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class ResidualSEBlock(nn.Module):
    """Two 3×3 conv + BN (+ReLU) with an identity (or 1×1 projected) skip, then squeeze-excitation."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(cin, cout, stride),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(cout)

    def forward(self, x):
        return self.se(self.relu(self.body(x) + self.skip(x)))


class ResidualSEUNet(nn.Module):
    def __init__(self, in_channels: int = 1, classes: int = 3, width: int = 16):
        super().__init__()
        widths = [width * 2**i for i in range(5)]  # 4 encoder stages + bridge
        self.encoder = nn.ModuleList()
        cin = in_channels
        for i, w in enumerate(widths[:4]):
            self.encoder.append(ResidualSEBlock(cin, w, stride=1 if i == 0 else 2))
            cin = w
        self.bridge = ResidualSEBlock(widths[3], widths[4], stride=2)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(3, -1, -1):
            self.up.append(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2))
            self.decoder.append(ResidualSEBlock(2 * widths[i], widths[i]))
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x):
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = self.bridge(x)
        for up, dec, skip in zip(self.up, self.decoder, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class TwoSEUNet(nn.Module):
    """2Se/U-Net: 4 conv blocks, 3 index-keeping max-pools; 3 decoder blocks after max-unpooling + skip."""

    def __init__(self, in_channels: int = 1, classes: int = 3, width: int = 24):
        super().__init__()
        widths = [width * 2**i for i in range(4)]

        def block(cin, cout):
            return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout), SqueezeExcite(cout))

        self.encoder = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.encoder.append(block(cin, w))
            cin = w
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        # Unpooling puts values back at the remembered argmax positions, so the tensor being unpooled
        # must have the pooled tensor's channels: a 1×1 conv maps the deeper features down first.
        self.reduce = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1) for i in range(2, -1, -1))
        self.decoder = nn.ModuleList(block(2 * widths[i], widths[i]) for i in range(2, -1, -1))
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x):
        skips, indices = [], []
        for i, stage in enumerate(self.encoder):
            x = stage(x)
            if i < 3:
                skips.append(x)
                x, idx = self.pool(x)
                indices.append(idx)
        for reduce, dec, skip, idx in zip(self.reduce, self.decoder, reversed(skips), reversed(indices)):
            x = self.unpool(reduce(x), idx, output_size=skip.shape[-2:])
            x = dec(torch.cat([x, skip], dim=1))
        return self.head(x)
