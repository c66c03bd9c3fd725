"""Instance segmentation of overlapping cells and their nuclei: IMBMDCR-Net, defined and trained on MMDetection
3.3, run by torch + torchvision alone.

* :func:`segment_instances` / :func:`segment_instances_steps` — any-size image → :class:`InstanceResult`
  (a sparse cell set of overlapping cells, scores, nuclei, ids linking them); tiled and merged across tiles.
* presets ``lite`` (trains on 2 CPU cores; the shipped default) and ``full`` (the paper's ResNeXt-101
  64x4d + DCNv2 model), in ``configs/``; IMBMDCR-Net's modules in :mod:`.modules`.
* :mod:`.portable` the torch + torchvision network that inference runs by default (``backend="auto"``),
  giving the mmdet model's detections from the same weights; :mod:`.model` loads either backend.
* :mod:`.augment` compositing augmentation, :mod:`.train` training, :mod:`.evaluate` COCO figures.

Importing this package needs only numpy: torch is imported on first use. mmdet and mmcv (with its compiled
ops) are needed only for training and ``backend="mmdet"``; when a backend cannot be imported,
:class:`~napari_cervix.instances.model.InstancesUnavailable` says what to install.
"""

from .inference import segment_instances, segment_instances_steps
from .result import InstanceResult

__all__ = ["segment_instances", "segment_instances_steps", "InstanceResult"]
