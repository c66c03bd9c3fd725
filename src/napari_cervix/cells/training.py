"""Training and cross-validation of the three cell classifiers on labelled single-cell crops (Herlev).

Everything here takes arrays (N × C × S × S crops in [0, 1], integer Herlev class indices, group ids that
keep cells of one slide image in one fold), so the CLI, the benchmark and the tests share one path:

* :func:`train_classifier` trains one architecture and returns a :class:`~.classifier.CellClassifier`
  (checkpointing every few minutes so ``--resume`` continues an interrupted run);
* :func:`cross_validate` runs stratified group k-fold, collects out-of-fold probabilities, picks the binary
  "reviewable" threshold on them and reports accuracy, abnormal recall and specificity, with each fold's
  threshold chosen on the *other* folds' predictions (so the reported figures are not tuned on themselves).

Seeds are fixed (torch, numpy, fold split), so a rerun on the same machine gives the same model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..kinds import cell_kind
from .classifier import CellClassifier, abnormal_probability, consistent_predictions
from .crops import resize_square, to_channels
from .descriptors import masks_for_crops


@dataclass
class TrainConfig:
    arch: str = "ld_resnet"  # a classifier kind: napari_cervix.kinds.kind_names("classifier")
    size: int = 96
    channels: int = 1  # 1 = gray (ISBI smears, the demo), 3 = RGB
    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    widths: tuple = (32, 64, 128)
    blocks: int = 2
    channels_per_class: int = 16
    beta: float = 1.5  # LD loss weight (paper 000)
    tau: float = 20.0  # diversity weight inside the LD loss (paper 000)
    label_smoothing: float = 0.05
    class_balance: float = 0.0  # cross-entropy class weights ∝ count^-class_balance (0 = none, 0.5 = 1/sqrt)
    seed: int = 0
    device: str = "auto"
    tta: int = 8  # test-time dihedral transforms averaged at inference
    checkpoint_minutes: float = 3.0
    bf16: bool = False  # bfloat16 autocast where the device has it natively (the older recipes were float32)
    target_recall: float = 0.97  # binary threshold is chosen to reach this recall on validation folds
    fusion_hidden: int = 128
    fusion_alpha: float = 1e-2
    network_size: int | None = None  # CNN input side when it differs from ``size`` (descriptor_boost: 96 of 128)
    network_channels: int | None = None  # 1: a gray CNN beside color descriptors (descriptor_boost)
    boost_iterations: int = 300  # descriptor_boost trees (scikit-learn HistGradientBoostingClassifier)
    boost_learning_rate: float = 0.05
    boost_leaves: int = 15
    boost_max_features: float = 1.0
    cnn_weight: float = 0.5  # descriptor_boost: P = w · P(CNN) + (1 − w) · P(trees)
    extra: dict = field(default_factory=dict)

    @property
    def needs_masks(self) -> bool:
        return cell_kind(self.arch).needs_masks

    def model_config(self) -> dict:
        # Color models standardize the channels jointly so the stain's hue survives (see models.Standardize).
        network_channels = self.network_channels or self.channels
        config = {
            "widths": list(self.widths),
            "blocks": self.blocks,
            "channels_per_class": self.channels_per_class,
            "per_channel": network_channels == 1,
        }
        config.update(cell_kind(self.arch).model_config(self))
        return config


def shipped_recipe(arch: str, channels: int = 1, **overrides) -> TrainConfig:
    """The recipe the shipped classifier of ``arch`` was trained (and cross-validated) with (the kind's
    ``recipe``)."""
    options: dict = {"arch": arch, "channels": channels, **cell_kind(arch).recipe}
    options.update(overrides)
    return TrainConfig(**options)


# ------------------------------------------------------------------------------------------- data


def crops_from_images(images: list[np.ndarray], size: int, channels: int) -> np.ndarray:
    """Whole single-cell images (Herlev) → N × C × size × size float32 in [0, 1]."""
    out = np.empty((len(images), channels, size, size), np.float32)
    for i, image in enumerate(images):
        out[i] = resize_square(to_channels(image, channels), size).transpose(2, 0, 1)
    return out


def herlev_groups(names: list[str]) -> np.ndarray:
    """Slide-image id of each Herlev cell (file ``A-B-NNN`` → ``A-B``), so one image's cells share a fold."""
    keys = [name.rsplit("-", 1)[0] if name.count("-") >= 2 else name for name in names]
    _, groups = np.unique(keys, return_inverse=True)
    return groups


def labelled_samples(spec: str) -> list:
    """The labelled single-cell samples of a class-folder dataset such as ``herlev:DIR``."""
    from ..io.datasets import load_dataset

    return [s for s in load_dataset(spec) if s.label is not None]


def load_labelled_cells(spec: str, size: int, channels: int, class_names: list[str], samples: list | None = None):
    """(crops, targets, groups, names) of a class-folder dataset such as ``herlev:DIR``.

    ``samples``: the dataset's :func:`labelled_samples` when the caller already loaded them.
    """
    if samples is None:
        samples = labelled_samples(spec)
    unknown = sorted({s.label for s in samples} - set(class_names))
    if unknown:
        raise ValueError(f"{spec}: class folders {unknown} are not among the classifier's classes {class_names}")
    if not samples:
        raise ValueError(f"{spec}: no labelled cells found")
    names = [s.name for s in samples]
    crops = crops_from_images([s.image for s in samples], size, channels)
    targets = np.array([class_names.index(s.label) for s in samples], np.int64)
    return crops, targets, herlev_groups(names), names


# ---------------------------------------------------------------------------------------- training


def _class_weights(targets: np.ndarray, n_classes: int, power: float = 1.0) -> np.ndarray:
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1) / n_classes) ** power, 0.0)
    return (weights / weights[counts > 0].mean()).astype(np.float32)


def train_network(
    config: TrainConfig,
    crops: np.ndarray,
    targets: np.ndarray,
    *,
    masks: np.ndarray | None = None,
    n_classes: int,
    checkpoint: Path | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
):
    """Train the CNN of ``config.arch`` (LD/ResNet, or the mask-fusion net when ``masks`` are given)."""
    import torch
    import torch.nn.functional as F

    from ..trainer import Trainer, bf16_helps, one_cycle, pick_device, seed_everything
    from .augment import augment_batch
    from .classifier import build_network
    from .models import ld_loss

    seed_everything(config.seed)
    device = pick_device(config.device)
    model = build_network(
        "mask_fusion" if masks is not None else "ld_resnet",
        n_classes,
        config.network_channels or config.channels,
        config.model_config(),
    )
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if len(crops) < 2:
        raise ValueError("training needs at least two cells (BatchNorm)")
    # A last batch of one cell is left out (BatchNorm needs two); the schedule spans the batches that train.
    batches_per_epoch = len(crops) // config.batch_size + (len(crops) % config.batch_size >= 2)
    steps = config.epochs * batches_per_epoch
    generator = torch.Generator(device=device).manual_seed(config.seed)
    order_rng = np.random.default_rng(config.seed)
    order = torch.zeros(len(crops), dtype=torch.int64)  # this epoch's cell order, carried through checkpoints
    trainer = Trainer(
        model,
        optimizer,
        steps=steps,
        schedule=one_cycle(config.lr, steps, pct_start=0.15),
        device=device,
        checkpoint=checkpoint,
        checkpoint_minutes=config.checkpoint_minutes,
        bf16=config.bf16 and bf16_helps(device),
        generators={"augment": generator, "order": order_rng, "epoch_order": order},
        meta={"config": asdict(config)},
        log=log,
        log_every=10 * batches_per_epoch,
        describe=lambda record, _: (
            f"epoch {record['step'] // batches_per_epoch}/{config.epochs} loss {record['loss']:.4f}"
        ),
    )

    def same_epochs(saved: dict) -> None:
        planned = saved["config"]["epochs"]
        if planned != config.epochs:
            raise ValueError(
                f"{checkpoint} belongs to a {planned}-epoch run; resume it with {planned} epochs "
                "(the learning-rate schedule depends on the total)"
            )

    if resume and trainer.resume(check=same_epochs):
        log(f"resumed from {checkpoint} at epoch {trainer.step // batches_per_epoch}")

    from .classifier import network_view

    x_all = network_view(torch.from_numpy(crops), config.network_size or config.size, config.network_channels).to(
        device
    )
    y_all = torch.from_numpy(targets).to(device)
    m_all = torch.from_numpy(masks).to(device) if masks is not None else None
    if masks is not None:
        weights = torch.from_numpy(_class_weights(targets, n_classes)).to(device)
    elif config.class_balance:
        weights = torch.from_numpy(_class_weights(targets, n_classes, config.class_balance)).to(device)
    else:
        weights = None

    def train_step(step):
        batch = step % batches_per_epoch
        if batch == 0:
            order.copy_(torch.from_numpy(order_rng.permutation(len(crops))))
        index = order[batch * config.batch_size : (batch + 1) * config.batch_size].to(device)
        x, m = augment_batch(
            x_all[index],
            None if m_all is None else m_all[index],
            generator=generator,
            channel_gain=0.1 if x_all.shape[1] == 3 else 0.0,
        )
        y = y_all[index]
        if m is not None:
            loss = F.cross_entropy(model(x, m), y, weight=weights, label_smoothing=config.label_smoothing)
        else:
            logits, grouped = model(x)
            loss = F.cross_entropy(logits, y, weight=weights, label_smoothing=config.label_smoothing)
            if config.beta:
                ld, _, _ = ld_loss(
                    grouped, y, n_classes, config.channels_per_class, tau=config.tau, generator=generator
                )
                loss = loss + config.beta * ld
        return loss

    trainer.run(train_step)
    model.eval()
    return model.cpu()


def train_classifier(
    config: TrainConfig,
    crops: np.ndarray,
    targets: np.ndarray,
    *,
    mask_fn=None,
    masks: np.ndarray | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    network=None,
    log: Callable[[str], None] = print,
) -> CellClassifier:
    """Train ``config.arch`` on crops with Herlev class indices; returns a ready :class:`CellClassifier`.

    ``network``: an already trained CNN of the same recipe to reuse instead of training one (descriptor_boost
    and feature_fusion fit only their own parts on top of it). ``masks``: the crops' N × 2 × S × S one-hot
    (cytoplasm, nucleus) masks where they are known (the Bethesda grader's detections), else ``mask_fn``'s.
    """
    model_kind = cell_kind(config.arch)  # a ValueError naming the known kinds
    out_names, class_map, abnormal_classes = model_kind.output_space()
    out_targets = class_map[targets] if class_map is not None else targets
    ckpt = Path(checkpoint_dir) / f"{config.arch}.ckpt" if checkpoint_dir else None
    given_masks = masks
    if model_kind.cnn_takes_masks:
        masks = given_masks if given_masks is not None else masks_for_crops(crops, mask_fn)
    else:
        masks = None
    if network is None and model_kind.has_network:
        network = train_network(
            config, crops, out_targets, masks=masks, n_classes=len(out_names), checkpoint=ckpt, resume=resume, log=log
        )
    options = dict(
        size=config.size,
        channels=config.channels,
        tta=config.tta,
        model_config=config.model_config(),
        mask_source="otsu" if model_kind.needs_masks and mask_fn is None else None,
    )
    trained_cnn = CellClassifier(config.arch, network, out_names, abnormal_classes, **options)
    parts = model_kind.fit(config, trained_cnn, crops, out_targets, mask_fn, masks=given_masks)  # its own parts
    return CellClassifier(config.arch, network, out_names, abnormal_classes, **options, **parts)


# -------------------------------------------------------------------------------- cross-validation


def choose_threshold(p_abnormal: np.ndarray, is_abnormal: np.ndarray, target_recall: float) -> float:
    """Highest threshold whose recall on these cells is ≥ ``target_recall`` (maximizes specificity)."""
    scores = np.sort(p_abnormal[is_abnormal])
    if scores.size == 0:
        return 0.5
    # Flag p ≥ t: keeping the k lowest-scoring abnormal cells below t costs recall k / n.
    allowed_misses = int(np.floor((1 - target_recall) * scores.size + 1e-9))
    return float(scores[allowed_misses]) if allowed_misses < scores.size else float(scores[-1])


def binary_scores(p_abnormal: np.ndarray, is_abnormal: np.ndarray, threshold: float) -> dict:
    from sklearn.metrics import roc_auc_score

    flagged = p_abnormal >= threshold
    positives, negatives = is_abnormal.sum(), (~is_abnormal).sum()
    recall = float((flagged & is_abnormal).sum() / positives) if positives else float("nan")
    specificity = float((~flagged & ~is_abnormal).sum() / negatives) if negatives else float("nan")
    accuracy = float((flagged == is_abnormal).mean())
    auc = float(roc_auc_score(is_abnormal, p_abnormal)) if positives and negatives else float("nan")
    return {"recall_abnormal": recall, "specificity": specificity, "accuracy": accuracy, "auc": auc}


def fold_splits(targets: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0):
    """The (train, test) index pairs of stratified group k-fold (same split for every architecture)."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(targets)), targets, groups))


def cross_validate(
    config: TrainConfig,
    crops: np.ndarray,
    targets: np.ndarray,
    groups: np.ndarray,
    *,
    folds: int = 5,
    only_folds: list[int] | None = None,
    mask_fn=None,
    log: Callable[[str], None] = print,
) -> dict:
    """Stratified group k-fold CV on Herlev class indices; returns out-of-fold probabilities and figures.

    ``only_folds`` runs a subset (to spread folds over processes); the summary then covers those folds.
    """
    out_names, _, _ = cell_kind(config.arch).output_space()
    oof = np.zeros((len(crops), len(out_names)), np.float32)
    fold_of = np.full(len(crops), -1, np.int64)
    for fold, (train_idx, test_idx) in enumerate(fold_splits(targets, groups, folds, config.seed)):
        if only_folds is not None and fold not in only_folds:
            continue
        start = time.monotonic()
        model = train_classifier(config, crops[train_idx], targets[train_idx], mask_fn=mask_fn, log=lambda m: None)
        oof[test_idx] = model.predict_proba(crops[test_idx], masks=None, mask_fn=mask_fn)
        fold_of[test_idx] = fold
        log(f"fold {fold + 1}/{folds}: {len(test_idx)} cells, {time.monotonic() - start:.0f}s")
    done = fold_of >= 0
    result = summarize_cv(oof[done], fold_of[done], targets[done], config.arch, config.target_recall)
    result["oof"], result["fold_of"] = oof, fold_of
    return result


def summarize_cv(oof: np.ndarray, fold_of: np.ndarray, targets: np.ndarray, arch: str, target_recall: float) -> dict:
    """Figures from out-of-fold probabilities ``oof`` (cells × output classes) and Herlev targets."""
    from ..classes import HERLEV_ABNORMAL, HERLEV_CLASSES

    out_names, class_map, out_abnormal_names = cell_kind(arch).output_space()
    out_abnormal = np.array([name in out_abnormal_names for name in out_names])
    is_abnormal = np.array([HERLEV_CLASSES[t] in HERLEV_ABNORMAL for t in targets])
    p_abn = abnormal_probability(oof, out_abnormal)
    out_targets = class_map[targets] if class_map is not None else targets
    # Honest per-fold figures: each fold's threshold comes from the other folds' predictions.
    fold_flags = np.zeros(len(oof), bool)
    fold_pred = np.zeros(len(oof), np.int64)
    for fold in np.unique(fold_of):
        test, rest = fold_of == fold, fold_of != fold
        t = choose_threshold(p_abn[rest], is_abnormal[rest], target_recall)
        fold_flags[test] = p_abn[test] >= t
        fold_pred[test] = consistent_predictions(oof[test], out_abnormal, p_abn[test], t)
    threshold = choose_threshold(p_abn, is_abnormal, target_recall)
    scores = binary_scores(p_abn, is_abnormal, 0.5)
    positives, negatives = is_abnormal.sum(), (~is_abnormal).sum()
    scores["recall_abnormal"] = float((fold_flags & is_abnormal).sum() / max(positives, 1))
    scores["specificity"] = float((~fold_flags & ~is_abnormal).sum() / max(negatives, 1))
    scores["accuracy"] = float((fold_flags == is_abnormal).mean())
    summary = {
        "folds": int(len(np.unique(fold_of))),
        "cells": int(len(oof)),
        "accuracy_argmax": float((oof.argmax(1) == out_targets).mean()),
        "accuracy": float((fold_pred == out_targets).mean()),
        "binary": scores,
        "threshold": threshold,
        "target_recall": target_recall,
        "confusion": _confusion(out_targets, fold_pred, len(out_names)).tolist(),
        "classes": list(out_names),
    }
    return {"summary": summary, "oof": oof, "fold_of": fold_of}


def _confusion(y_true, y_pred, n):
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def write_json(path: Path, data: dict) -> None:
    from ..io._atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))
