"""Training of the instance presets: mmdet's detector on the one trainer (:mod:`napari_cervix.trainer`), fed
by the compositing augmentation (:mod:`.augment`).

What is this task's own: the training fields (drawn from the sources' random generator, which the trainer's
checkpoint carries, so ``resume=True`` continues exactly), mmdet's losses, the preset's schedule
(:func:`learning_rate`) and the weights' metadata. The trainer's checkpoint ``OUT/last.pt`` holds only
tensors, numbers and strings and loads with ``weights_only=True`` — which is why mmengine's Runner is not
used (its checkpoints are pickles, and its data pipeline would re-implement :mod:`.augment`). The shippable
result is ``OUT/model.safetensors``: a plain state dict with the full model config and training/validation
facts in its metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..trainer import load_checkpoint
from .augment import Field, FieldSource, draw_field

CHECKPOINT = "last.pt"
WEIGHTS = "model.safetensors"


def fields_to_batch(fields: list[Field], in_channels: int) -> dict:
    """Fields → the ``{"inputs", "data_samples"}`` dict mmdet's data preprocessor takes."""
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    inputs, samples = [], []
    for field in fields:
        h, w = field.image.shape
        image = torch.from_numpy(np.ascontiguousarray(field.image, np.float32))[None]
        inputs.append(image.expand(in_channels, -1, -1).contiguous() if in_channels == 3 else image)
        masks = field.masks
        boxes = np.zeros((len(masks), 4), np.float32)
        for k, mask in enumerate(masks):
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            boxes[k] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        gt = InstanceData()
        gt.bboxes = HorizontalBoxes(torch.from_numpy(boxes))
        gt.labels = torch.from_numpy(field.labels.astype(np.int64))
        gt.masks = BitmapMasks(masks.astype(np.uint8), h, w)
        sample = DetDataSample(
            metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), pad_shape=(h, w))
        )
        sample.gt_instances = gt
        samples.append(sample)
    return {"inputs": inputs, "data_samples": samples}


def learning_rate(schedule: dict, step: int, total: int, steps_per_epoch: int) -> float:
    """lr at ``step``: linear warm-up, then multi-step decay at epoch milestones (the paper's
    schedule) when ``milestones`` is given, else cosine decay to ``min_lr_ratio``."""
    base = float(schedule["optimizer"]["lr"])
    warmup = int(schedule.get("warmup_steps", 0))
    if step < warmup:
        return base * (0.001 + 0.999 * step / warmup)
    if schedule.get("milestones"):
        epoch = step / max(steps_per_epoch, 1)
        drops = sum(epoch >= m for m in schedule["milestones"])
        return base * float(schedule.get("gamma", 0.1)) ** drops
    ratio = float(schedule.get("min_lr_ratio", 0.0))
    progress = min(max((step - warmup) / max(total - warmup, 1), 0.0), 1.0)
    return base * (ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _optimizer(model, schedule: dict):
    import torch

    spec = dict(schedule["optimizer"])
    kind = spec.pop("type")
    # No weight decay on norms and biases (standard for detectors trained from scratch).
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    if kind == "SGD":
        return torch.optim.SGD(groups, **spec)
    if kind == "AdamW":
        return torch.optim.AdamW(groups, **spec)
    raise ValueError(f"unsupported optimizer {kind!r} (SGD or AdamW)")


def export_weights(checkpoint, out_path, extra_meta: dict | None = None) -> str:
    """Checkpoint → shippable safetensors (model state dict + metadata); returns its sha256."""
    from ..registry import save_weights

    state = load_checkpoint(checkpoint)
    meta = json.loads(state["meta"])
    meta["training"] = {**meta.get("training", {}), "steps": int(state["step"])}
    meta.update(extra_meta or {})
    return save_weights(state["model"], out_path, meta)


def _field_stream(sources, rng, size, p_composite, batch, workers, seed, start):
    """Batches of training fields, drawn here (``workers`` = 0, reproducible across resumes through the
    checkpointed random state) or in worker processes (each seeded by seed, start step and worker id)."""
    if workers <= 0:
        while True:
            yield [draw_field(sources, rng, size, p_composite) for _ in range(batch)]
    import torch

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            worker_rng = np.random.default_rng([seed, start, info.id if info else 0])
            while True:
                yield draw_field(sources, worker_rng, size, p_composite)

    loader = torch.utils.data.DataLoader(
        Stream(), batch_size=batch, num_workers=workers, collate_fn=list, prefetch_factor=4, persistent_workers=True
    )
    yield from loader


def split_datasets(specs: list[str], val_fraction: float = 0.2, seed: int = 0):
    """Each dataset spec → (name, train samples, val samples), split by :func:`napari_cervix.io.split_samples`."""
    from ..io import load_dataset, split_samples

    out = []
    for spec in specs:
        samples = [s for s in load_dataset(spec) if s.cells is not None]
        if not samples:
            raise ValueError(f"{spec}: no sample has per-cell masks; instance training needs them")
        train, val = split_samples(samples, val_fraction, seed)
        out.append((spec, train, val))
    return out


def train_instances(
    datasets: list[str],
    out_dir="runs/instances-lite",
    preset: str = "lite",
    steps: int | None = None,
    batch_size: int | None = None,
    resume: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
    checkpoint_seconds: float = 300.0,
    log_every: int = 10,
    device: str = "cpu",
    threads: int | None = None,
    p_composite: float = 0.5,
    workers: int = 0,
    init: str | None = None,
    lr: float | None = None,
    max_minutes: float | None = None,
    stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train a preset on dataset specs (``coco:FILE.json``, ``isbi2014:DIR``, ``isbi2015:DIR``); each
    spec is one image domain, drawn from equally often. Returns the exported weights' path.

    Checkpoints every ``checkpoint_seconds`` to ``out_dir/last.pt``; with ``resume`` the run continues
    from it (same preset required). ``stop()`` is polled between steps (a checkpoint is written).
    ``workers`` > 0 draws training fields in that many processes (for a GPU, which outruns one CPU
    core of augmentation). ``init``: start from a weights file of the same architecture. ``lr``
    overrides the preset's. ``max_minutes``: stop (checkpoint and export) after this much wall time of
    training, earlier sessions of a resumed run included; the learning rate follows whichever is further
    along, steps or time, so it has decayed when the budget ends.
    """
    import torch

    from ..registry import read_metadata
    from ..trainer import Trainer, pick_device
    from .model import ARCHITECTURE, config_to_json, detector_from_weights, load_config, new_detector

    if threads:
        torch.set_num_threads(int(threads))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / CHECKPOINT
    cfg = load_config(preset)
    schedule = dict(cfg.schedule)
    if lr is not None:
        schedule["optimizer"] = {**schedule["optimizer"], "lr": float(lr)}
    batch = int(batch_size or schedule.get("batch_size", 2))

    splits = split_datasets(datasets, val_fraction, seed)
    sources = [FieldSource(train, name=spec) for spec, train, _ in splits]
    n_train = sum(len(s.fields) for s in sources)
    steps_per_epoch = max(1, math.ceil(n_train / batch))
    total = int(steps or schedule.get("steps") or schedule["epochs"] * steps_per_epoch)

    if device != "cpu":
        from .modules import use_portable_ops

        use_portable_ops()
    detector = new_detector(preset, device)
    model = detector.module
    carried = {}
    if init:
        init_meta = read_metadata(init)
        initial = detector_from_weights(init, init_meta)  # validates architecture and classes
        model.load_state_dict(initial.module.state_dict())
        # A fine-tune keeps the input its start was trained on (pixel size included): the data are
        # brought to it (e.g. scripts/cric_instance_targets.py resamples CRIC to it).
        carried = {"input": init_meta["input"]} if init_meta.get("input") else {}
        log(f"initialised from {init}")
    optimizer = _optimizer(model, schedule)
    rng = np.random.default_rng(seed)
    meta = {
        "task": "instances",
        "architecture": ARCHITECTURE[preset],
        "preset": preset,
        **config_to_json(cfg),
        **carried,
        "training": {
            "datasets": datasets,
            "val_fraction": val_fraction,
            "seed": seed,
            "batch_size": batch,
            "total_steps": total,
            "p_composite": p_composite,
            "init": str(init) if init else None,
            "optimizer": schedule["optimizer"],
            "device": device,
            "train_images": {spec: [s.name for s in tr] for spec, tr, _ in splits},
            "val_images": {spec: [s.name for s in va] for spec, _, va in splits},
        },
    }

    def describe(record: dict, steps: int) -> str:
        parts = " ".join(
            f"{k}={v:.3f}"
            for k, v in record.items()
            if k in ("loss", "loss_rpn_cls", "loss_mask") or k.endswith("loss_cls")
        )
        return f"step {record['step']}/{steps} lr={record['lr']:.2e} {record['s_per_step']:.2f} s/step {parts}"

    trainer = Trainer(
        model,
        optimizer,
        steps=total,
        schedule=lambda position: learning_rate(schedule, position, total, steps_per_epoch),
        device=pick_device(device),
        checkpoint=ckpt_path,
        checkpoint_minutes=checkpoint_seconds / 60.0,
        max_minutes=max_minutes,
        bf16=False,  # mmdet's losses and the portable RoI ops are kept in float32
        grad_clip=schedule.get("grad_clip"),
        generators={"fields": rng},
        meta=meta,
        log=log,
        log_every=log_every,
        describe=describe,
    )

    def same_preset(saved: dict) -> None:
        if saved.get("preset") != preset:
            raise ValueError(
                f"{ckpt_path} is a {saved.get('preset')} run; resume it with --preset "
                f"{saved.get('preset')} or choose another --out"
            )

    if resume and trainer.resume(check=same_preset):
        log(f"resumed {ckpt_path} at step {trainer.step}/{total}")
    elif resume:
        log(f"no checkpoint at {ckpt_path}: starting a new run")

    log(
        f"training {preset} ({detector.num_parameters / 1e6:.2f} M parameters) on {n_train} images "
        f"from {len(sources)} domain(s), {sum(len(s.sprites) for s in sources)} sprites; "
        f"steps {trainer.step}→{total}, batch {batch}, device {device}"
    )
    fields_iter = _field_stream(sources, rng, detector.train_size, p_composite, batch, workers, seed, trainer.step)

    def train_step(step):
        data = model.data_preprocessor(fields_to_batch(next(fields_iter), detector.in_channels), True)
        return model.parse_losses(model.loss(data["inputs"], data["data_samples"]))

    trainer.run(train_step, stop=stop)
    weights = out_dir / WEIGHTS
    export_weights(ckpt_path, weights)
    log(f"checkpoint {ckpt_path} (step {trainer.step}); weights {weights}")
    detector_from_weights(weights, read_metadata(weights))  # the exported file must load back
    return weights
