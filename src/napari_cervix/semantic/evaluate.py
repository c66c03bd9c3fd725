"""``napari-cervix evaluate semantic``: pixel metrics of a model on dataset specs, through the same
tiled inference users run. On nuclei-only ground truth (EDF frames) pixels not in a nucleus count as
background, so only the nucleus entries are meaningful there."""

from __future__ import annotations

import numpy as np

from ..io.sample import SEMANTIC_CLASSES
from .losses import IGNORE, NOT_NUCLEUS


def evaluate_semantic(
    model, specs: list[str], *, split: str = "val", tta: bool = False, crf: bool = False, log=print
) -> dict:
    from ..metrics import PixelConfusion
    from .data import load_training_samples, training_target
    from .inference import load_semantic_model, segment_semantic

    loaded = load_semantic_model(model)
    samples = load_training_samples(specs)
    if split == "val":
        wanted = set(loaded.metadata.get("validation_images", []))
        samples = [(s, c) for s, c in samples if s.name in wanted]
        if not samples:
            raise ValueError(
                f"none of the images in {specs} is in the model's validation split "
                f"({len(wanted)} names in its metadata); use --split all to score every image"
            )
    confusion = PixelConfusion(len(SEMANTIC_CLASSES))
    for sample, complete in samples:
        labels = segment_semantic(sample.image, loaded, tta=tta, crf=crf)
        target = training_target(sample, complete)
        target = np.where(target == NOT_NUCLEUS, 0, target)
        known = target != IGNORE
        confusion.update(labels[known], target[known])
        log(f"{sample.name}: done")
    result = confusion.result(SEMANTIC_CLASSES)
    return {
        "MPA": result["MPA"],
        "mIoU": result["mIoU"],
        "dice": result["dice"],
        "precision": result["precision"],
        "recall": result["recall"],
        "n_images": len(samples),
        "split": split,
    }
