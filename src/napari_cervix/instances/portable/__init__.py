"""IMBMDCR-Net inference on torch + torchvision alone: no mmcv, mmdet or mmengine, nothing to compile.

The network is built from the mmdet model config a weights file's card stores and loads the same state
dict as the mmdet model (same keys and shapes). DCNv2, RoIAlign and NMS are torchvision's kernels; every
other test-time step is mmdet 3.3's written out in the same operations (see :mod:`.heads`), so the
detections equal the mmdet path's (tests/test_portable_instances.py). A config this backend does not
implement is refused with the key that asks for it (:class:`UnsupportedConfig`).

Never import mmcv, mmdet or mmengine here: this package is what runs where they cannot be installed.
"""

from __future__ import annotations

from .config import UnsupportedConfig
from .detector import CascadeMaskRCNN

__all__ = ["CascadeMaskRCNN", "UnsupportedConfig"]
