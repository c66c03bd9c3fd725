"""Instance segmentation of overlapping cells and their nuclei: IMBMDCR-Net on MMDetection 3.3.

* :func:`segment_instances` / :func:`segment_instances_steps` — any-size image → :class:`InstanceResult`
  (N×H×W overlapping cell masks, scores, nuclei, ids linking them); tiled and merged across tiles.
* presets ``lite`` (trains on 2 CPU cores; the shipped default) and ``full`` (the paper's ResNeXt-101
  64x4d + DCNv2 model), in ``configs/``; IMBMDCR-Net's modules in :mod:`.modules`.
* :mod:`.augment` compositing augmentation, :mod:`.train` training, :mod:`.evaluate` COCO figures.

Importing this package needs only numpy: torch, mmcv and mmdet are imported on first use, and a missing
mmcv op raises :class:`~napari_cervix.instances.model.InstancesUnavailable` with the fix.
"""

from .inference import segment_instances, segment_instances_steps
from .result import InstanceResult

__all__ = ["segment_instances", "segment_instances_steps", "InstanceResult"]
