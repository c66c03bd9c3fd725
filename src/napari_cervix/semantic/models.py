"""Semantic segmentation networks (background / cytoplasm / nucleus) by kind name, importable without torch.

* ``unet-<encoder>``: U-Net through segmentation-models-pytorch with the encoders of paper 001
  (vgg19, resnet50, mobilenet_v2, efficientnet-b2, densenet121) and light ones (resnet18, resnet34).
  No ImageNet weights can be downloaded here, so encoders start from random weights.
* ``residual-se-unet`` (paper 004) and ``2se-unet`` (paper 000): :mod:`.networks`.

Each is a kind in :data:`napari_cervix.kinds.KINDS`, which knows how to build it.
"""

from __future__ import annotations

from ..kinds import kind, kind_names

ARCHITECTURES = kind_names("semantic")


def build_model(architecture: str, in_channels: int = 1, classes: int = 3, **options):
    """A fresh (randomly initialised) torch network of a semantic kind; ``options`` go to its constructor."""
    return kind(architecture, "semantic").network(in_channels, classes, **options)
