"""``segment_instances``: every cell and nucleus of an image, tiled through the shared tiling engine.

Images larger than the network's tile run in overlapping tiles (:func:`napari_cervix.tiling.tile_grid`).
An instance cut by a tile border is seen, whole or in part, by each tile it crosses; those detections are
merged into one instance (never duplicated) by :class:`_Merger`: two detections of the same class from
different tiles are the same object when their masks agree inside the region both tiles saw (IoU ≥
``merge_iou`` there). Matching is one-to-one per tile, so two genuinely overlapping cells seen by both
tiles stay two cells. The merged mask is the detection that no inner tile border cuts, when there is
one (the tile that saw the object whole saw it best), else the union of the cut parts.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from ..cellset import CellSet, Masks
from ..geometry import BACKGROUND, NUCLEUS
from ..imaging import check_image, color_kind
from ..scale import Scale, for_model, plan_scale, probe_window, resample
from ..tiling import Tile, TileProgress, run_to_end, tile_grid
from .completion import MAX_CELL_RADIUS_UM, MIN_NUCLEUS_AREA_UM2, complete_cell_set
from .refinement import redraw_cells, redraw_nuclei
from .result import InstanceResult

MERGE_IOU = 0.5
#: The pixel size a completion assumes when neither the image's nor the semantic model's is known.
UNKNOWN_PIXEL_SIZE_UM = 0.25


class _Instance:
    __slots__ = ("label", "score", "y0", "x0", "mask", "tiles", "cut")

    def __init__(self, label, score, y0, x0, mask, tile, cut):
        self.label, self.score, self.y0, self.x0, self.mask = label, score, y0, x0, mask
        self.tiles = [tile]
        self.cut = cut  # touches a tile border that is not the image border: possibly incomplete

    @property
    def box(self):
        return self.y0, self.x0, self.y0 + self.mask.shape[0], self.x0 + self.mask.shape[1]

    def absorb(self, other: _Instance) -> None:
        self.tiles.extend(other.tiles)
        if self.cut != other.cut or not (self.cut or other.cut):
            # One saw the object whole (or both did): keep that detection as it is.
            best = (
                other
                if (self.cut and not other.cut) or (not self.cut and not other.cut and other.score > self.score)
                else self
            )
            self.y0, self.x0, self.mask, self.score, self.cut = best.y0, best.x0, best.mask, best.score, best.cut
            return
        y0, x0 = min(self.y0, other.y0), min(self.x0, other.x0)
        y1, x1 = max(self.box[2], other.box[2]), max(self.box[3], other.box[3])
        mask = np.zeros((y1 - y0, x1 - x0), bool)
        for part in (self, other):
            mask[part.y0 - y0 : part.box[2] - y0, part.x0 - x0 : part.box[3] - x0] |= part.mask
        self.y0, self.x0, self.mask = y0, x0, mask
        self.score = max(self.score, other.score)
        self.cut = True


def _crop(mask: np.ndarray, y0: int, x0: int):
    """(bbox-cropped mask, its global y0, x0), or None for an empty mask.

    The crop is a copy: a view would keep the tile's whole K×h×w mask array alive for as long as the
    instance lives, i.e. memory would grow with every tile of the image.
    """
    rows = np.flatnonzero(mask.any(1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask.any(0))
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()
    return crop, y0 + int(rows[0]), x0 + int(cols[0])


def _region_iou(a: _Instance, b: _Instance, tile: Tile) -> float:
    """IoU of two instances inside ``tile`` ∩ (tiles that saw ``a``), where both had a chance to be seen."""
    y0, x0 = max(a.y0, b.y0), max(a.x0, b.x0)
    y1, x1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if y1 <= y0 or x1 <= x0:
        return 0.0
    # Region seen by both: the new tile and any tile that contributed to a.
    ay0, ax0, ay1, ax1 = a.box
    by0, bx0, by1, bx1 = b.box
    gy0, gx0 = min(ay0, by0), min(ax0, bx0)
    gy1, gx1 = max(ay1, by1), max(ax1, bx1)
    seen_a = np.zeros((gy1 - gy0, gx1 - gx0), bool)
    for t in a.tiles:
        seen_a[max(t.y0 - gy0, 0) : max(t.y1 - gy0, 0), max(t.x0 - gx0, 0) : max(t.x1 - gx0, 0)] = True
    shared = np.zeros_like(seen_a)
    shared[max(tile.y0 - gy0, 0) : max(tile.y1 - gy0, 0), max(tile.x0 - gx0, 0) : max(tile.x1 - gx0, 0)] = True
    shared &= seen_a
    ma = np.zeros_like(seen_a)
    ma[ay0 - gy0 : ay1 - gy0, ax0 - gx0 : ax1 - gx0] = a.mask
    mb = np.zeros_like(seen_a)
    mb[by0 - gy0 : by1 - gy0, bx0 - gx0 : bx1 - gx0] = b.mask
    ma &= shared
    mb &= shared
    union = np.count_nonzero(ma | mb)
    return np.count_nonzero(ma & mb) / union if union else 0.0


def _overlap_fraction(a: _Instance, b: _Instance) -> float:
    """|a ∩ b| / min(|a|, |b|)."""
    y0, x0 = max(a.y0, b.y0), max(a.x0, b.x0)
    y1, x1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if y1 <= y0 or x1 <= x0:
        return 0.0
    inter = np.count_nonzero(
        a.mask[y0 - a.y0 : y1 - a.y0, x0 - a.x0 : x1 - a.x0] & b.mask[y0 - b.y0 : y1 - b.y0, x0 - b.x0 : x1 - b.x0]
    )
    return inter / max(min(np.count_nonzero(a.mask), np.count_nonzero(b.mask)), 1)


class _Merger:
    """Collects per-tile detections in image coordinates, merging those that are one object."""

    def __init__(self, shape, merge_iou: float = MERGE_IOU):
        self.height, self.width = int(shape[0]), int(shape[1])
        self.merge_iou = merge_iou
        self.instances: list[_Instance] = []

    def add_tile(self, tile: Tile, masks, scores, labels) -> None:
        new = []
        for mask, score, label in zip(masks, scores, labels):
            cropped = _crop(mask, tile.y0, tile.x0)
            if cropped is None:
                continue
            part, y0, x0 = cropped
            cut = (
                (y0 == tile.y0 and tile.y0 > 0)
                or (x0 == tile.x0 and tile.x0 > 0)
                or (y0 + part.shape[0] == tile.y1 and tile.y1 < self.height)
                or (x0 + part.shape[1] == tile.x1 and tile.x1 < self.width)
            )
            new.append(_Instance(int(label), float(score), y0, x0, part, tile, cut))
        # Candidate pairs: existing instances from other tiles whose box meets the new one's box.
        pairs = []
        for j, inst in enumerate(new):
            for i, old in enumerate(self.instances):
                if old.label != inst.label or tile in old.tiles:
                    continue
                oy0, ox0, oy1, ox1 = old.box
                ny0, nx0, ny1, nx1 = inst.box
                if oy1 <= ny0 or ny1 <= oy0 or ox1 <= nx0 or nx1 <= ox0:
                    continue
                iou = _region_iou(old, inst, tile)
                if iou >= self.merge_iou:
                    pairs.append((iou, i, j))
        # Greedy, best agreement first. Each earlier instance joins at most one new detection. A new
        # detection may join several earlier instances only if those do not overlap each other: they
        # are then pieces of one object seen by different tiles that never shared a pixel (e.g. two
        # slivers at a tile corner), whereas overlapping ones are distinct overlapping cells.
        groups: dict[int, list[int]] = {}
        used_old = set()
        for _, i, j in sorted(pairs, reverse=True):
            if i in used_old:
                continue
            group = groups.setdefault(j, [])
            if any(_overlap_fraction(self.instances[i], self.instances[k]) > 0.1 for k in group):
                continue
            group.append(i)
            used_old.add(i)
        gone = set()
        for j, group in groups.items():
            target = self.instances[group[0]]
            for k in group[1:]:
                target.absorb(self.instances[k])
                gone.add(k)
            target.absorb(new[j])
        self.instances = [inst for k, inst in enumerate(self.instances) if k not in gone]
        self.instances.extend(inst for j, inst in enumerate(new) if j not in groups)

    def masks(self, label: int, min_score: float) -> Masks:
        """The merged instances of one class scoring at least ``min_score``, by descending score, as the
        sparse masks they already are (box + cropped mask): no full-image array per instance."""
        chosen = sorted(
            (i for i in self.instances if i.label == label and i.score >= min_score), key=lambda i: -i.score
        )
        return Masks(
            (self.height, self.width),
            [i.box for i in chosen],
            [i.mask for i in chosen],
            [i.score for i in chosen],
        )

    def cell_set(self, cell_label: int, nucleus_label: int, min_score: float) -> CellSet:
        """The merged cells (ids 1..N by descending score) and nuclei, each nucleus linked to its cell."""
        return CellSet(self.masks(cell_label, min_score), nuclei=self.masks(nucleus_label, min_score))


def segment_instances_steps(
    image,
    model="default",
    score_threshold: float = 0.5,
    max_detections: int = 100,
    tile_size: int = 512,
    overlap: int = 128,
    device: str = "cpu",
    backend: str = "auto",
    *,
    pixel_size_um: float | None = None,
    estimate_scale: bool = True,
    complete_nuclei: bool | None = None,
    refine_nuclei: bool = True,
    refine_cells: bool = True,
    semantic_model="default",
) -> Generator[TileProgress, None, InstanceResult]:
    """Generator form of :func:`segment_instances`: yields a :class:`TileProgress` per tile (for
    progress bars and cancelling between tiles) and returns the :class:`InstanceResult`.

    ``model``: ``"default"`` (the shipped lite weights), a registered name, a safetensors file, or an
    already loaded :class:`~napari_cervix.instances.model.Detector`. ``score_threshold``: detections
    below it are dropped. ``max_detections``: at most this many detections (cells + nuclei) per network
    pass, i.e. per tile. ``tile_size``/``overlap``: tiling of images larger than one tile (use the
    model's training size, 512, for best results); tiles smaller than the network's minimum are padded.
    Gray or color (converted to luminance), 8/16-bit or float images are accepted. ``backend``:
    ``"auto"`` (torch + torchvision), ``"torch"`` or ``"mmdet"``; both give the same detections (see
    :mod:`napari_cervix.instances.model`). ``pixel_size_um``: µm per pixel of the image, resampled to the
    model's and the cells mapped back; None: estimated from the image's nuclei by the semantic default
    (:func:`~napari_cervix.semantic.inference.semantic_scale`) unless ``estimate_scale=False``. The
    result's ``meta["scale"]`` says what was used. ``complete_nuclei``: add the nuclei the detector
    missed from ``semantic_model``, each with a cell (:mod:`~napari_cervix.instances.completion`); None
    (default): on for color images, where the detector misses many abnormal nuclei, off for gray ones.
    The added cells take the ids after the detected ones; ``meta["completed"]`` counts them.
    ``refine_nuclei``: redraw each detected nucleus's boundary on ``semantic_model``'s nucleus probability
    (:mod:`~napari_cervix.instances.refinement`; default on); ``meta["refined"]`` counts the nuclei redrawn.
    ``refine_cells``: redraw each detected cell's edge against the background on the semantic model's
    foreground (default on); ``meta["refined_cells"]`` counts them.
    """
    from .model import load_detector, prepare_gray

    if not 0.0 <= float(score_threshold) <= 1.0:
        raise ValueError(f"score_threshold must be in [0, 1]; got {score_threshold}")
    if int(max_detections) < 1:
        raise ValueError(f"max_detections must be at least 1; got {max_detections}")
    check_image(image)
    detector = load_detector(model, device=device, backend=backend)
    color = color_kind(probe_window(image))
    complete = color == "rgb" if complete_nuclei is None else bool(complete_nuclei)
    refine, refine_edges = bool(refine_nuclei), bool(refine_cells)
    semantic = (
        _semantic_pass(image, color, semantic_model, pixel_size_um, estimate_scale)
        if complete or refine or refine_edges
        else None
    )
    scale = _scale_for(image, detector, pixel_size_um, estimate_scale, None if semantic is None else semantic[2])
    shape = (int(image.shape[0]), int(image.shape[1]))
    # validates shape/dtype, one normalization for every tile
    gray = prepare_gray(resample(np.asarray(image), scale.factor) if scale.resamples else image)
    tiles = tile_grid(gray.shape, int(tile_size), int(overlap))
    merger = _Merger(gray.shape)
    # The network's own score floor stays low (0.05) so near-threshold parts of a cell cut by a tile
    # border can still be merged; the user's threshold is applied to the merged instances.
    floor = min(0.05, float(score_threshold))
    for done, tile in enumerate(tiles, start=1):
        masks, scores, labels = detector.predict_tile(
            gray[tile.slices], score_floor=floor, max_detections=int(max_detections)
        )
        merger.add_tile(tile, masks, scores, labels)
        yield TileProgress(done, len(tiles))
    cell_label = detector.classes.index("cell")
    nucleus_label = detector.classes.index("nucleus")
    cells = merger.cell_set(cell_label, nucleus_label, float(score_threshold))
    cells = cells.resized(shape) if scale.resamples else cells
    completed, refined, refined_cells = {}, {}, {}
    if semantic is not None:
        labels, nucleus_probability, _, pixel = semantic
        if refine:  # before the completion, which adds only what the redrawn nuclei leave
            cells, refined = redraw_nuclei(cells, nucleus_probability)
        if refine_edges:  # before the completion, whose cells are drawn on the semantic foreground already
            cells, refined_cells = redraw_cells(cells, labels != BACKGROUND)
        if complete:
            cells, completed = complete_cell_set(
                cells, labels, nucleus_probability, MAX_CELL_RADIUS_UM / pixel, MIN_NUCLEUS_AREA_UM2 / pixel**2
            )
    return InstanceResult(
        cells=cells,
        meta={
            "model": detector.meta.get("name") or detector.meta.get("architecture"),
            "architecture": detector.meta.get("architecture"),
            "backend": detector.backend,
            "tiles": len(tiles),
            "tile_size": int(tile_size),
            "overlap": int(overlap),
            "score_threshold": float(score_threshold),
            "max_detections": int(max_detections),
            "scale": scale.as_dict(),
            "completed": completed,
            "refined": refined,
            "refined_cells": refined_cells,
        },
    )


def _semantic_pass(image, color: str, model, pixel_size_um, estimate: bool):
    """(semantic labels, nucleus probability — both on the image's grid —, the semantic model's Scale, the
    image's µm per pixel) for :func:`complete_cell_set`."""
    from ..semantic.inference import load_semantic_model, segment_semantic

    loaded = load_semantic_model(model, color)
    labels, probabilities, used = segment_semantic(
        image,
        loaded,
        return_probabilities=True,
        return_scale=True,
        pixel_size_um=pixel_size_um,
        estimate_scale=estimate,
    )
    # Unknown pixel size, run as it is: the image is taken to be at the semantic model's.
    pixel = used.pixel_size_um or loaded.card.input.pixel_size_um or UNKNOWN_PIXEL_SIZE_UM
    # Only the nucleus channel is used: a copy, so the other channels are freed before the detector runs.
    return labels, np.array(probabilities[NUCLEUS], np.float32), used, pixel


def _scale_for(image, detector, pixel_size_um, estimate: bool, semantic_scale_used: Scale | None = None) -> Scale:
    """The Scale the detector runs ``image`` at: the given pixel size, or the semantic default's estimate
    (``semantic_scale_used`` when the semantic model has already run on the image)."""
    model_pixel = (detector.meta.get("input") or {}).get("pixel_size_um")
    if pixel_size_um is not None:
        return plan_scale(image, model_pixel, None, None, pixel_size_um)
    if not estimate or model_pixel is None:
        return Scale(1.0, "off" if not estimate else "model")
    if semantic_scale_used is None:
        from ..semantic.inference import semantic_scale

        semantic_scale_used = semantic_scale(image)
    return for_model(semantic_scale_used, model_pixel)


def segment_instances(
    image,
    model="default",
    score_threshold: float = 0.5,
    max_detections: int = 100,
    tile_size: int = 512,
    overlap: int = 128,
    device: str = "cpu",
    progress=None,
    backend: str = "auto",
    *,
    pixel_size_um: float | None = None,
    estimate_scale: bool = True,
    complete_nuclei: bool | None = None,
    refine_nuclei: bool = True,
    refine_cells: bool = True,
    semantic_model="default",
) -> InstanceResult:
    """Every cell and nucleus of ``image`` as its own mask, overlaps intact (see
    :func:`segment_instances_steps` for the options). ``progress``: optional callback per tile."""
    steps = segment_instances_steps(
        image,
        model,
        score_threshold,
        max_detections,
        tile_size,
        overlap,
        device,
        backend,
        pixel_size_um=pixel_size_um,
        estimate_scale=estimate_scale,
        complete_nuclei=complete_nuclei,
        refine_nuclei=refine_nuclei,
        refine_cells=refine_cells,
        semantic_model=semantic_model,
    )
    return run_to_end(steps, progress)
