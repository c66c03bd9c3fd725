"""Readers and writers for Pap-smear datasets; every reader returns :class:`CellSample` objects.

Qt- and napari-free. ``load_dataset("KIND:PATH")`` is the entry point of the CLI and training code;
``split_samples`` is the one validation split.
"""

from .coco import read_coco, write_coco
from .datasets import READERS, guess_kind, load_dataset, parse_spec, split_key, split_samples
from .edf import nucleus_gt_variant, read_edf_nuclei, read_nucleus_gt
from .folders import read_class_folders, read_mask_pairs
from .images import read_image, read_mask
from .isbi import (
    read_cell_npz,
    read_cyto_ground_truth,
    read_isbi2014,
    read_isbi2015,
    read_isbi2015_mat,
)
from .sample import SEMANTIC_CLASSES, CellSample

__all__ = [
    "CellSample",
    "SEMANTIC_CLASSES",
    "READERS",
    "read_image",
    "read_mask",
    "read_isbi2014",
    "read_isbi2015",
    "read_isbi2015_mat",
    "read_cyto_ground_truth",
    "read_cell_npz",
    "read_nucleus_gt",
    "nucleus_gt_variant",
    "read_edf_nuclei",
    "read_coco",
    "write_coco",
    "read_class_folders",
    "read_mask_pairs",
    "load_dataset",
    "parse_spec",
    "guess_kind",
    "split_samples",
    "split_key",
]
