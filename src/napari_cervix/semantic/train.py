"""Training of the semantic models: ``napari-cervix train semantic`` and :func:`train_semantic`.

A validation split from :func:`napari_cervix.io.split_samples`, the weighted crop stream of
:class:`~.data.CropDataset`, the loss and the validation score are this task's; the loop — seeds, the
step/time-budget schedule, ``last.pt`` every few minutes and exact ``--resume``, best-checkpoint keeping
(``best.safetensors`` + ``best.json`` with the validation metrics) — is :class:`napari_cervix.trainer.Trainer`.
``--init`` warm-starts from shipped weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..geometry import NUCLEUS, pad_to_multiple
from ..io.sample import SEMANTIC_CLASSES
from .losses import IGNORE


@dataclass
class SemanticTrainConfig:
    architecture: str = "unet-resnet18"
    datasets: list[str] = field(default_factory=list)
    out: str = "runs/semantic"
    steps: int = 4000
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss: str = "ce+dice"
    val_fraction: float = 0.2
    val_every: int = 250
    checkpoint_minutes: float = 3.0
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    arch_options: dict = field(default_factory=dict)
    init: str | None = None
    resume: bool = False
    max_minutes: float | None = None  # stop (and anneal the LR) by wall time as well as by steps
    partial_weight: float = 1.0  # sampling weight of partially annotated (real) frames vs complete ones
    focus_share: float = 0.0  # share of crops cut around annotated abnormal cells (see CropDataset)


def evaluate_pairs(model, pairs, device) -> dict:
    """Validation metrics: full pixel metrics on completely annotated images, nucleus Dice on all."""
    import torch

    from ..metrics import PixelConfusion

    complete = PixelConfusion(len(SEMANTIC_CLASSES))
    nucleus = PixelConfusion(2)
    model.eval()
    with torch.no_grad():
        for (image, target), is_complete in pairs:
            h, w = image.shape[:2]
            x, _ = pad_to_multiple(image, 32)  # H×W×C
            logits = model(torch.from_numpy(x.transpose(2, 0, 1).copy())[None].to(device))[0, :, :h, :w]
            pred = logits.argmax(0).cpu().numpy().astype(np.uint8)
            known = target != IGNORE
            nucleus.update((pred[known] == NUCLEUS).astype(np.uint8), (target[known] == NUCLEUS).astype(np.uint8))
            if is_complete:
                complete.update(pred, target)
    out = {"nucleus_dice_all": nucleus.result(("other", "nucleus"))["dice"]["nucleus"]}
    if complete.matrix.sum():
        out["complete"] = complete.result(SEMANTIC_CLASSES)
    return out


def _score(metrics: dict) -> float:
    parts = [metrics["nucleus_dice_all"]]
    if "complete" in metrics:
        parts += [metrics["complete"]["mIoU"], metrics["complete"]["dice"]["nucleus"]]
    return float(np.mean(parts))


def inflate_input_channels(state: dict, target: dict) -> dict:
    """``state`` (e.g. shipped gray weights) as float32, fitted to a model whose state dict is ``target``:
    a first convolution trained on 1 channel is copied, divided by the new channel count, into each
    channel, so a gray image replicated into RGB gives the gray model's output exactly. Any other
    mismatch is left for ``load_state_dict`` to report."""
    out = {}
    for key, value in state.items():
        value = value.float()
        wanted = target.get(key)
        gray_first_conv = wanted is not None and value.ndim == 4 and value.shape[1] == 1 < wanted.shape[1]
        if gray_first_conv and value.shape[0] == wanted.shape[0] and value.shape[2:] == wanted.shape[2:]:
            value = value.repeat(1, wanted.shape[1], 1, 1) / wanted.shape[1]
        out[key] = value
    return out


def train_semantic(config: SemanticTrainConfig, log=print) -> Path:
    """Train; returns the path of the best weights (``best.safetensors`` in ``config.out``)."""
    import torch

    from ..registry import load_state_dict
    from ..trainer import Trainer, pick_device, seed_everything, warmup_cosine
    from .data import CropDataset, build_training_set, normalization_record, normalize_image, sampling_weights
    from .losses import make_loss
    from .models import build_model

    seed_everything(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)

    data = build_training_set(config.datasets, config.val_fraction, config.seed)
    train_e = [e for e in data["entries"] if e["split"] == "train"]
    val_e = [e for e in data["entries"] if e["split"] == "val"]
    log(f"{len(train_e)} training and {len(val_e)} validation images from {', '.join(data['specs'])}")
    log("validation images: " + ", ".join(f"{e.get('dataset', '')}:{e['name']}" for e in val_e))
    channels = data["in_channels"]

    def pair(entry):
        return normalize_image(entry["image"], channels), entry["target"]

    train_pairs = [pair(e) for e in train_e]
    val_pairs = [(pair(e), e["complete"]) for e in val_e]
    weights = sampling_weights(train_e, config.partial_weight)

    model = build_model(config.architecture, channels, len(SEMANTIC_CLASSES), **config.arch_options).to(device)
    if config.init:
        model.load_state_dict(inflate_input_channels(load_state_dict(config.init), model.state_dict()))
        log(f"warm start from {config.init} ({channels} input channel(s))")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    metadata_base = {
        "task": "semantic",
        "architecture": config.architecture,
        "arch_options": config.arch_options,
        "classes": list(SEMANTIC_CLASSES),
        "in_channels": channels,
        "normalization": normalization_record(channels),
        "divisor": 32,
        "training": {k: v for k, v in asdict(config).items() if k not in ("resume", "device", "workers")},
        "training_data": data["specs"],
        "training_images": sorted(e["name"] for e in train_e),
        "validation_images": sorted(e["name"] for e in val_e),
    }

    trainer = Trainer(
        model,
        optimizer,
        steps=config.steps,
        schedule=warmup_cosine(config.lr, config.steps, warmup=100),
        device=device,
        checkpoint=out / "last.pt",
        checkpoint_minutes=config.checkpoint_minutes,
        max_minutes=config.max_minutes,
        meta=metadata_base,
        log=log,
    )
    if config.resume and trainer.resume():
        log(f"resumed at step {trainer.step} (best score {trainer.best_score:.4f})")

    # Crop i of the run is the same whether or not the run was interrupted: a resumed run reads on from its step.
    dataset = CropDataset(
        train_pairs,
        config.crop,
        length=config.steps * config.batch_size,
        weights=weights,
        seed=config.seed,
        focus=[e.get("focus") for e in train_e],
        focus_share=config.focus_share,
    )
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, range(trainer.step * config.batch_size, len(dataset))),
        batch_size=config.batch_size,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        drop_last=True,
    )
    loss_fn = make_loss(config.loss)

    def stream():  # a generator, so no loader worker starts when a resumed run has nothing left to train
        yield from loader

    batches = stream()

    def train_step(step):
        images, targets = next(batches)
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        return loss_fn(model(images).float(), targets)  # the trainer autocasts; the loss itself in float32

    def validate():
        metrics = evaluate_pairs(model, val_pairs, device)
        return _score(metrics), metrics

    trainer.run(train_step, validate=validate, val_every=config.val_every, best=out / "best.safetensors")
    return out / "best.safetensors"
