"""Training of the semantic models: ``napari-cervix train semantic`` and :func:`train_semantic`.

Fixed seeds, a validation split from :func:`napari_cervix.io.split_samples`, best-checkpoint keeping
(safetensors + JSON metadata with the validation metrics), a resumable ``last.pt`` written every few
minutes, and ``--init`` to warm-start from shipped weights.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

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


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def evaluate_pairs(model, pairs, device) -> dict:
    """Validation metrics: full pixel metrics on completely annotated images, nucleus Dice on all."""
    import torch

    from ..metrics import PixelConfusion

    complete = PixelConfusion(len(SEMANTIC_CLASSES))
    nucleus = PixelConfusion(2)
    model.eval()
    with torch.no_grad():
        for (image, target), is_complete in pairs:
            h, w = image.shape
            ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
            x = np.pad(image, ((0, ph - h), (0, pw - w)), mode="symmetric")
            logits = model(torch.from_numpy(x)[None, None].to(device))[0, :, :h, :w]
            pred = logits.argmax(0).cpu().numpy().astype(np.uint8)
            known = target != IGNORE
            nucleus.update((pred[known] == 2).astype(np.uint8), (target[known] == 2).astype(np.uint8))
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


def train_semantic(config: SemanticTrainConfig, log=print) -> Path:
    """Train; returns the path of the best weights (``best.safetensors`` in ``config.out``)."""
    import torch

    from ..imaging import PercentileNormalizer
    from ..registry import load_state_dict, save_weights
    from .data import CropDataset, build_training_set
    from .losses import make_loss
    from .models import build_model

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(config.device)

    data = build_training_set(config.datasets, config.val_fraction, config.seed)
    train_e = [e for e in data["entries"] if e["split"] == "train"]
    val_e = [e for e in data["entries"] if e["split"] == "val"]
    log(f"{len(train_e)} training and {len(val_e)} validation images from {', '.join(data['specs'])}")

    def pair(entry):
        return PercentileNormalizer(entry["image"])(entry["image"]), entry["target"]

    train_pairs = [pair(e) for e in train_e]
    val_pairs = [(pair(e), e["complete"]) for e in val_e]
    # Real frames are few but 4× larger; weight by area and by the partial-frame weight.
    weights = [
        e["image"].shape[0] * e["image"].shape[1] * (1.0 if e["complete"] else config.partial_weight) for e in train_e
    ]

    model = build_model(config.architecture, 1, len(SEMANTIC_CLASSES), **config.arch_options).to(device)
    if config.init:
        model.load_state_dict({k: v.float() for k, v in load_state_dict(config.init).items()})
        log(f"warm start from {config.init}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def progress() -> float:
        """Fraction of the run done, by steps or by the time budget, whichever is further along."""
        done = step / config.steps
        if config.max_minutes:
            done = max(done, (elapsed + time.time() - started) / (60 * config.max_minutes))
        return min(done, 1.0)

    def set_lr() -> float:
        lr = config.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * progress()))
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    loss_fn = make_loss(config.loss)
    step, best, elapsed, started = 0, -1.0, 0.0, time.time()
    last = out / "last.pt"
    if config.resume and last.exists():
        state = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best, elapsed = int(state["step"]), float(state["best"]), float(state.get("elapsed", 0.0))
        log(f"resumed at step {step} (best score {best:.4f})")

    dataset = CropDataset(
        train_pairs,
        config.crop,
        length=(config.steps - step) * config.batch_size,
        weights=weights,
        seed=config.seed + step,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        drop_last=True,
    )
    metadata_base = {
        "task": "semantic",
        "architecture": config.architecture,
        "arch_options": config.arch_options,
        "classes": list(SEMANTIC_CLASSES),
        "in_channels": 1,
        "normalization": {"kind": "percentile", "low": 1.0, "high": 99.5, "gray": True},
        "divisor": 32,
        "training": {k: v for k, v in asdict(config).items() if k not in ("resume", "device", "workers")},
        "training_data": data["specs"],
        "training_images": sorted(e["name"] for e in train_e),
        "validation_images": sorted(e["name"] for e in val_e),
    }

    def save_last():
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "best": best,
                "elapsed": elapsed + time.time() - started,
            },
            str(last) + ".tmp",
        )
        Path(str(last) + ".tmp").replace(last)

    # bf16 autocast on GPUs and on CPUs with native bf16 (faster there); weights stay float32.
    from .inference import native_bfloat16

    use_amp = device.type == "cuda" or (device.type == "cpu" and native_bfloat16())
    last_save, t0, running = time.time(), time.time(), []
    model.train()
    for images, targets in loader:
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        lr = set_lr()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(images)
        loss = loss_fn(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        running.append(loss.item())
        if step % 50 == 0:
            log(
                f"step {step}/{config.steps} loss {np.mean(running):.4f} lr {lr:.2e} "
                f"{(time.time() - t0) / 50:.2f}s/step"
            )
            running, t0 = [], time.time()
        finished = step >= config.steps or progress() >= 1.0
        if step % config.val_every == 0 or finished:
            metrics = evaluate_pairs(model, val_pairs, device)
            score = _score(metrics)
            log(f"step {step} validation score {score:.4f} {json.dumps(metrics)}")
            if score > best:
                best = score
                meta = dict(metadata_base, step=step, validation=metrics, validation_score=score)
                sha = save_weights(model.state_dict(), out / "best.safetensors", meta)
                (out / "best.json").write_text(json.dumps(dict(meta, sha256=sha), indent=2))
                log(f"new best {score:.4f} → {out / 'best.safetensors'}")
            model.train()
        if time.time() - last_save > config.checkpoint_minutes * 60:
            save_last()
            last_save = time.time()
        if finished:
            break
    save_last()
    return out / "best.safetensors"
