"""2Se/U-Net (paper 000): max-unpooling decoder with U-Net skips and SE modules."""

from __future__ import annotations

from .base import SemanticKind


class TwoSEUNet(SemanticKind):
    name = "2se-unet"
    description = "2Se/U-Net (paper 000): max-unpooling decoder with U-Net skips and SE modules"

    def network(self, in_channels: int = 1, classes: int = 3, **options):
        from ..semantic.networks import TwoSEUNet as Network

        return Network(in_channels, classes, **options)
