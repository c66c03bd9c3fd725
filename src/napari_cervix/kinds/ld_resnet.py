"""LD/ResNet (paper 000): a ResNet trained with the local discriminant loss, 7 Herlev classes."""

from __future__ import annotations

from .base import ClassifierKind


class LDResNet(ClassifierKind):
    name = "ld_resnet"
    description = "LD/ResNet: ResNet trained with the local discriminant loss (paper 000), 7 Herlev classes"
    recipe = {"epochs": 120}
