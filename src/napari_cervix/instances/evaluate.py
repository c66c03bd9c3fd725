"""``napari-cervix evaluate instances``: COCO mask AP (pycocotools) of a model on dataset specs, through
the same tiled inference users run. Figures are fractions with COCO's definitions (AP over IoU
0.50:0.95, AP50, AP75, AP_S/M/L by mask area 32²/96²), overall and per category, and for cells the ISBI
2014/2015 challenge's DC / FNo / TPp / FPp (:func:`~napari_cervix.metrics.challenge_measures`)."""

from __future__ import annotations

import time

import numpy as np


def validation_names(meta: dict) -> set[str]:
    names = set()
    for listed in (meta.get("training", {}).get("val_images") or {}).values():
        names.update(listed)
    return names


def evaluate_instances(
    model="default",
    specs=(),
    *,
    split: str = "val",
    score_threshold: float = 0.05,
    tile_size: int = 512,
    overlap: int = 128,
    max_detections: int = 100,
    challenge_score_threshold: float = 0.5,
    refine_nuclei: bool = True,
    refine_cells: bool = True,
    samples=None,
    log=print,
) -> dict:
    """Segment every image of ``specs`` (or the given ``samples``) and score against its annotations.

    ``split="val"`` keeps only the images the model's metadata lists as its validation split (the
    figures reported for a trained model); ``"all"`` scores every image. The low default score threshold
    (0.05) gives the whole precision–recall curve, as COCO evaluation expects; the challenge measures
    (``metrics["challenge"]["cell"]``) score a final segmentation: the cells scoring at least
    ``challenge_score_threshold`` (default 0.5, that of ``segment instances``). ``refine_nuclei``,
    ``refine_cells``: as in :func:`~napari_cervix.instances.inference.segment_instances`.
    """
    from ..io import load_dataset
    from ..metrics import PixelConfusion, challenge_measures, coco_segm_metrics
    from .model import load_detector

    if challenge_score_threshold < score_threshold:
        raise ValueError(
            f"challenge_score_threshold ({challenge_score_threshold}) is below score_threshold ({score_threshold}): "
            "the detections it would keep are not made"
        )
    detector = load_detector(model)
    if samples is None:
        samples = [s for spec in specs for s in load_dataset(spec)]
    samples = [s for s in samples if s.cells is not None]
    if split == "val":
        wanted = validation_names(detector.meta)
        samples = [s for s in samples if s.name in wanted]
        if not samples:
            raise ValueError(
                f"none of the images is in the model's validation split ({len(wanted)} names in "
                "its metadata); use --split all to score every image"
            )
    elif split != "all":
        raise ValueError(f"split must be 'val' or 'all', not {split!r}")
    if not samples:
        raise ValueError("no image with per-cell annotations to evaluate")
    from .inference import segment_instances

    predictions, seconds = [], 0.0
    nucleus_pixels = PixelConfusion(2)  # the semantic models' measure: kept nuclei vs the rest, pooled
    for sample in samples:
        start = time.perf_counter()
        result = segment_instances(
            sample.image,
            detector,
            score_threshold=score_threshold,
            max_detections=max_detections,
            tile_size=tile_size,
            overlap=overlap,
            refine_nuclei=refine_nuclei,
            refine_cells=refine_cells,
        )
        seconds += time.perf_counter() - start
        predictions.append(result.to_predictions())
        if sample.nuclei is not None:
            nuclei = result.nuclei
            predicted = nuclei.subset(nuclei.scores >= challenge_score_threshold).union()
            nucleus_pixels.update(predicted.astype(np.uint8), np.asarray(sample.nuclei, np.uint8))
        log(f"{sample.name}: {len(result)} cells, {len(result.nuclei)} nuclei")
    metrics = coco_segm_metrics(samples, predictions)
    metrics["challenge"] = {"cell": challenge_measures(samples, predictions, min_score=challenge_score_threshold)}
    if nucleus_pixels.matrix[1].sum():  # some image has true nuclei
        # Pixel Dice of the union of the nuclei kept (score ≥ the challenge threshold), as for semantic models.
        metrics["nucleus_dice"] = nucleus_pixels.result(("other", "nucleus"))["dice"]["nucleus"]
    metrics["n_images"] = len(samples)
    metrics["images"] = [s.name for s in samples]
    metrics["split"] = split
    metrics["seconds_per_image"] = seconds / len(samples)
    return metrics
