"""Losses of the papers, written for *partial* labels.

Targets are H×W integer maps: 0 background, 1 cytoplasm, 2 nucleus, plus two special values:
``NOT_NUCLEUS`` (254) for pixels known to be background *or* cytoplasm but not which (real EDF frames
annotate only nuclei, and the ISBI 2015 frames only some cells) and ``IGNORE`` (255). Each loss sees,
per class, only the pixels whose membership in that class is known, so a nuclei-only frame teaches
the nucleus channel without pretending its cytoplasm is background.

Jaccard (paper 001), Dice (004), class-weighted Dice + focal (002), cross-entropy.

The target values import without torch (the readers and :mod:`napari_cervix.pseudo_labels` build
targets with numpy only); torch is loaded when a loss first runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..geometry import NUCLEUS

if TYPE_CHECKING:
    import torch

NOT_NUCLEUS = 254
IGNORE = 255


def allowed_classes(target: torch.Tensor, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(allowed, known): B×C×H×W floats. ``allowed`` = classes the pixel may be; ``known`` = whether
    membership in that class is determined for the pixel."""
    import torch
    import torch.nn.functional as F

    definite = target < classes
    onehot = F.one_hot(torch.where(definite, target, 0).long(), classes).permute(0, 3, 1, 2).float()
    onehot = onehot * definite[:, None]
    partial = (target == NOT_NUCLEUS)[:, None].float()
    not_nucleus = torch.ones(classes, device=target.device)
    not_nucleus[NUCLEUS] = 0
    allowed = onehot + partial * not_nucleus[None, :, None, None]
    known = definite[:, None].float().expand_as(onehot).clone()
    known[:, NUCLEUS] += partial[:, 0]
    return allowed, known


def _allowed_prob(probs, allowed):
    return (probs * allowed).sum(1).clamp_min(1e-6)


def cross_entropy(logits, target, class_weights=None):
    probs = logits.softmax(1)
    allowed, _ = allowed_classes(target, logits.shape[1])
    valid = allowed.sum(1) > 0
    nll = -_allowed_prob(probs, allowed).log()
    if class_weights is not None:
        nll = nll * (allowed * class_weights[None, :, None, None]).amax(1)
    return nll[valid].mean() if valid.any() else logits.sum() * 0


def focal(logits, target, gamma: float = 2.0, class_weights=None):
    probs = logits.softmax(1)
    allowed, _ = allowed_classes(target, logits.shape[1])
    valid = allowed.sum(1) > 0
    q = _allowed_prob(probs, allowed)
    loss = -((1 - q) ** gamma) * q.log()
    if class_weights is not None:
        loss = loss * (allowed * class_weights[None, :, None, None]).amax(1)
    return loss[valid].mean() if valid.any() else logits.sum() * 0


def _overlap_terms(logits, target):
    probs = logits.softmax(1)
    truth, known = allowed_classes(target, logits.shape[1])
    truth = truth * (known > 0)  # a NOT_NUCLEUS pixel is a known 0 for the nucleus channel only
    dims = (0, 2, 3)
    inter = (probs * truth * known).sum(dims)
    p_sum = (probs * known).sum(dims)
    t_sum = (truth * known).sum(dims)
    present = known.sum(dims) > 0
    return inter, p_sum, t_sum, present


def dice(logits, target, class_weights=None, smooth: float = 1.0):
    inter, p_sum, t_sum, present = _overlap_terms(logits, target)
    per_class = 1 - (2 * inter + smooth) / (p_sum + t_sum + smooth)
    weights = present.float() if class_weights is None else class_weights * present
    return (per_class * weights).sum() / weights.sum().clamp_min(1e-6)


def jaccard(logits, target, smooth: float = 1.0):
    inter, p_sum, t_sum, present = _overlap_terms(logits, target)
    per_class = 1 - (inter + smooth) / (p_sum + t_sum - inter + smooth)
    return (per_class * present).sum() / present.sum().clamp_min(1)


LOSSES = ("ce+dice", "ce+jaccard", "dice", "jaccard", "focal+dice", "ce")


def make_loss(name: str, class_weights: torch.Tensor | None = None):
    """Loss by name. ``focal+dice`` is paper 002's class-weighted Dice + focal; pure overlap losses
    (paper 001's Jaccard, 004's Dice) train more stably here with a cross-entropy term added."""
    table = {
        "ce": lambda lo, t: cross_entropy(lo, t, class_weights),
        "dice": lambda lo, t: dice(lo, t, class_weights),
        "jaccard": jaccard,
        "ce+dice": lambda lo, t: cross_entropy(lo, t, class_weights) + dice(lo, t, class_weights),
        "ce+jaccard": lambda lo, t: cross_entropy(lo, t, class_weights) + jaccard(lo, t),
        "focal+dice": lambda lo, t: focal(lo, t, class_weights=class_weights) + dice(lo, t, class_weights),
    }
    if name not in table:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return table[name]
