"""Residual SE-UNet (paper 004): residual + squeeze-excitation blocks, stride-2 downsampling."""

from __future__ import annotations

from .base import SemanticKind


class ResidualSEUNet(SemanticKind):
    name = "residual-se-unet"
    description = "Residual SE-UNet (paper 004): residual + squeeze-excitation blocks, stride-2 downsampling"

    def network(self, in_channels: int = 1, classes: int = 3, **options):
        from ..semantic.networks import ResidualSEUNet as Network

        return Network(in_channels, classes, **options)
