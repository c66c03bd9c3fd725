"""IMBMDCR-Net on MMDetection 3.3: the ``lite`` preset (trains on 2 CPU cores, shipped) and ``full``
(the paper's ResNeXt-101 64x4d + DCNv2); their configs are in ``instances/configs``."""

from __future__ import annotations

from .base import InstancesKind


class IMBMDCR(InstancesKind):
    def __init__(self, preset: str, name: str, config_file: str, description: str):
        self.preset, self.name, self.config_file, self.description = preset, name, config_file, description


LITE = IMBMDCR("lite", "imbmdcr-net-lite", "imbmdcr_lite.py", "IMBMDCR-Net lite: light trunk and heads, 2 CPU cores")
FULL = IMBMDCR("full", "imbmdcr-net", "imbmdcr_full.py", "IMBMDCR-Net (paper): ResNeXt-101 64x4d + DCNv2")
