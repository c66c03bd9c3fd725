"""U-Net family (paper 001) through segmentation-models-pytorch: one kind per encoder.

No ImageNet weights can be downloaded here, so encoders start from random weights.
"""

from __future__ import annotations

from .base import SemanticKind

ENCODERS = ("resnet18", "resnet34", "resnet50", "vgg19", "mobilenet_v2", "efficientnet-b2", "densenet121")


class UNet(SemanticKind):
    def __init__(self, encoder: str):
        self.encoder = encoder
        self.name = f"unet-{encoder}"
        self.description = f"U-Net with a {encoder} encoder (segmentation-models-pytorch)"

    def network(self, in_channels: int = 1, classes: int = 3, **options):
        import segmentation_models_pytorch as smp

        if "decoder_channels" in options:
            options = {**options, "decoder_channels": tuple(options["decoder_channels"])}
        return smp.Unet(self.encoder, encoder_weights=None, in_channels=in_channels, classes=classes, **options)


FAMILY = tuple(UNet(encoder) for encoder in ENCODERS)
