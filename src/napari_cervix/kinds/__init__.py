"""The one table of model kinds: every architecture a weights file's card may name, for every task.

The loaders (``load_semantic_model``, ``load_detector``, ``load_classifier``) build and load a registered or
user model through the kind its card names (:func:`kind_of`, whose error names the file and the key), the
CLI's ``choices=`` list the table, and training builds networks and fits parts through it. Adding a kind is
one new module here (a :class:`~.base.ModelKind` subclass) plus one line in the table below. Importing this
package is light (no torch, no mmdet).
"""

from __future__ import annotations

from . import unet
from .base import ClassifierKind, InstancesKind, ModelKind, SemanticKind
from .bethesda import BethesdaBoost
from .bethesda_fusion import BethesdaFusion
from .descriptor_boost import DescriptorBoost
from .feature_fusion import FeatureFusion
from .imbmdcr import FULL as IMBMDCR_FULL
from .imbmdcr import LITE as IMBMDCR_LITE
from .ld_resnet import LDResNet
from .mask_fusion import MaskFusion
from .residual_se_unet import ResidualSEUNet
from .two_se_unet import TwoSEUNet

KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        *unet.FAMILY,
        ResidualSEUNet(),
        TwoSEUNet(),
        IMBMDCR_LITE,
        IMBMDCR_FULL,
        LDResNet(),
        MaskFusion(),
        FeatureFusion(),
        DescriptorBoost(),
        BethesdaBoost(),
        BethesdaFusion(),
    )
}


def kind_names(task: str) -> tuple[str, ...]:
    """The kinds of one task, in table order (for pickers and ``choices=``)."""
    return tuple(name for name, kind in KINDS.items() if kind.task == task)


def kind(name: str, task: str) -> ModelKind:
    """The kind called ``name`` of ``task``; a ValueError listing the known ones otherwise."""
    found = KINDS.get(name)
    if found is None or found.task != task:
        raise ValueError(f"unknown {task} model kind {name!r}; choose one of {', '.join(kind_names(task))}")
    return found


#: Tasks whose models classify cell crops (:class:`ClassifierKind`): Herlev-style classes, and Bethesda grading.
CELL_TASKS = ("classifier", "grading")


def cell_kind(name: str) -> ClassifierKind:
    """The cell-classifier kind called ``name`` (of any :data:`CELL_TASKS` task)."""
    found = KINDS.get(name)
    if found is None or found.task not in CELL_TASKS:
        known = ", ".join(n for n, k in KINDS.items() if k.task in CELL_TASKS)
        raise ValueError(f"unknown classifier model kind {name!r}; choose one of {known}")
    return found


def kind_of(card) -> ModelKind:
    """The kind a model card names; the error names the card's file and its ``architecture`` key."""
    try:
        return kind(card.kind, card.task)
    except ValueError as err:
        raise card.error("architecture", str(err)) from None


__all__ = [
    "CELL_TASKS",
    "cell_kind",
    "KINDS",
    "ClassifierKind",
    "InstancesKind",
    "ModelKind",
    "SemanticKind",
    "kind",
    "kind_names",
    "kind_of",
]
