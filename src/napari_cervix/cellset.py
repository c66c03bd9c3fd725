"""The one representation of overlapping cells: sparse masks (a bounding box + the mask cropped to it).

Overlapping cells cannot live in one label image, and a dense N×H×W stack costs N × H × W bytes (2,000
cells on an 8192² field: 134 GB). Here each object keeps only its box and the mask inside it, so memory
follows the objects' area. Label images and full stacks are rendered from it on request.

* :class:`Masks` — any set of 2-D masks on one image: boxes, cropped masks, scores. Used for cells and,
  separately, for nuclei.
* :class:`CellSet` — the cells (with their ids) and the nuclei, each nucleus linked to its cell by id
  (0 = in no cell). Readers, instance inference, features, classification, COCO, metrics and the napari
  layers all take and give this.

numpy only at import; scipy (label images) and pycocotools (RLE) are imported by the methods that use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .geometry import label_components, smallest_wins_order


def _positions(index) -> np.ndarray:
    """Indices or a bool selector → int64 positions."""
    index = np.asarray(index)
    if index.dtype == bool:
        return np.flatnonzero(index)
    return index.astype(np.int64).reshape(-1) if index.size else np.zeros(0, np.int64)


def _bounding_crop(mask: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """((y0, x0, y1, x1), cropped mask) of a 2-D mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return (y0, x0, y1, x1), np.ascontiguousarray(mask[y0:y1, x0:x1], bool)


def union_mask(nuclei) -> np.ndarray | None:
    """H×W bool of every nucleus, whatever form they come in: None, sparse :class:`Masks`, an H×W mask or
    Labels image, or an N×H×W stack."""
    if nuclei is None:
        return None
    if isinstance(nuclei, Masks):
        return nuclei.union()
    mask = np.asarray(nuclei) > 0
    return mask.any(axis=0) if mask.ndim == 3 else mask


class Masks:
    """Masks on one H×W image, each stored as its box ``(y0, x0, y1, x1)`` and the bool mask inside it.

    ``boxes`` K×4 int64, ``crops`` K bool arrays (crop k is ``y1 - y0`` × ``x1 - x0``), ``scores`` K
    float32 (1 for ground truth). Masks may overlap. The ``from_*`` constructors crop each mask to its
    bounding box and leave empty masks out.
    """

    def __init__(self, shape, boxes=(), crops=(), scores=None):
        self.shape = (int(shape[0]), int(shape[1]))
        self.boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
        self.crops = [np.asarray(c, bool) for c in crops]
        if len(self.crops) != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.crops)} cropped masks")
        for (y0, x0, y1, x1), crop in zip(self.boxes, self.crops):
            if crop.shape != (y1 - y0, x1 - x0) or y0 < 0 or x0 < 0 or y1 > self.shape[0] or x1 > self.shape[1]:
                raise ValueError(f"cropped mask {crop.shape} does not fit box {(y0, x0, y1, x1)} in {self.shape}")
        self.scores = (
            np.ones(len(self.boxes), np.float32) if scores is None else np.asarray(scores, np.float32).reshape(-1)
        )
        if len(self.scores) != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} masks but {len(self.scores)} scores")
        self._areas = None

    # ------------------------------------------------------------------------------------ building

    @classmethod
    def from_stack(cls, masks: Iterable[np.ndarray], shape=None, scores=None) -> tuple[Masks, np.ndarray]:
        """Crop full-size masks (an N×H×W stack or any iterable of H×W masks, read one at a time).

        Returns the masks and, for each, its position in the input: empty masks are left out (there is
        nothing to crop), so callers can keep the input's numbering (id = position + 1).
        """
        boxes, crops, kept = [], [], []
        for index, mask in enumerate(masks):
            mask = np.asarray(mask)
            if shape is None:
                shape = mask.shape
            if mask.shape != tuple(shape):
                raise ValueError(f"mask {index} has shape {mask.shape}, the image is {tuple(shape)}")
            cropped = _bounding_crop(mask.astype(bool, copy=False))
            if cropped is not None:
                boxes.append(cropped[0])
                crops.append(cropped[1])
                kept.append(index)
        if shape is None:
            raise ValueError("an empty list of masks needs the image shape")
        kept = np.asarray(kept, np.int64)
        chosen = None if scores is None else np.asarray(scores, np.float32).reshape(-1)[kept]
        return cls(shape, boxes, crops, chosen), kept

    @classmethod
    def from_crops(cls, shape, corners, crops, scores=None) -> tuple[Masks, np.ndarray]:
        """Masks from per-object windows: ``corners`` (y0, x0) and the mask inside each window (e.g. a
        tile merger's or a generator's). Windows are tightened to the mask; empty ones are left out, and
        the positions of the kept ones are returned with the masks."""
        boxes, tight, kept = [], [], []
        for index, ((y0, x0), crop) in enumerate(zip(corners, crops)):
            cropped = _bounding_crop(np.asarray(crop, bool))
            if cropped is not None:
                (by0, bx0, by1, bx1), part = cropped
                boxes.append((by0 + int(y0), bx0 + int(x0), by1 + int(y0), bx1 + int(x0)))
                tight.append(part)
                kept.append(index)
        kept = np.asarray(kept, np.int64)
        chosen = None if scores is None else np.asarray(scores, np.float32).reshape(-1)[kept]
        return cls(shape, boxes, tight, chosen), kept

    @classmethod
    def concatenate(cls, parts: Iterable[Masks]) -> Masks:
        """The masks of ``parts`` (all on one image) one after the other, with their scores."""
        parts = list(parts)
        if not parts:
            raise ValueError("concatenate needs at least one Masks (its image shape)")
        shapes = {part.shape for part in parts}
        if len(shapes) > 1:
            raise ValueError(f"masks of different images cannot be concatenated: {sorted(shapes)}")
        boxes = np.concatenate([part.boxes for part in parts])
        crops = [crop for part in parts for crop in part.crops]
        return cls(parts[0].shape, boxes, crops, np.concatenate([part.scores for part in parts]))

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> tuple[Masks, np.ndarray]:
        """One mask per label value of an H×W integer label image; returns the masks and their values."""
        from scipy import ndimage as ndi

        labels = np.asarray(labels)
        boxes, crops, values = [], [], []
        for index, box in enumerate(ndi.find_objects(labels)):
            if box is None:
                continue
            boxes.append((box[0].start, box[1].start, box[0].stop, box[1].stop))
            crops.append(labels[box] == index + 1)
            values.append(index + 1)
        return cls(labels.shape, boxes, crops), np.asarray(values, np.int64)

    @classmethod
    def from_rle(cls, rles: list[dict], scores=None) -> Masks:
        """Masks from COCO RLE dicts (compressed or not, all of one image size), cropped one by one."""
        from pycocotools import mask as mask_utils

        boxes, crops, kept, shape = [], [], [], None
        for index, rle in enumerate(rles):
            height, width = (int(v) for v in rle["size"])
            if shape is None:
                shape = (height, width)
            elif shape != (height, width):
                raise ValueError(f"RLE {index} is {height}×{width}, the first one {shape[0]}×{shape[1]}")
            if isinstance(rle["counts"], list):
                rle = mask_utils.frPyObjects(rle, height, width)
            cropped = _bounding_crop(mask_utils.decode(rle).astype(bool))
            if cropped is not None:
                boxes.append(cropped[0])
                crops.append(cropped[1])
                kept.append(index)
        if shape is None:
            raise ValueError("no RLE given: the image size is unknown")
        chosen = None if scores is None else np.asarray(scores, np.float32).reshape(-1)[kept]
        return cls(shape, boxes, crops, chosen)

    # ------------------------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self.crops)

    def __iter__(self) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray]]:
        """(box, cropped mask) per mask."""
        for box, crop in zip(self.boxes, self.crops):
            yield tuple(int(v) for v in box), crop

    @property
    def areas(self) -> np.ndarray:
        """K int64 pixel counts."""
        if self._areas is None:
            self._areas = np.array([np.count_nonzero(c) for c in self.crops], np.int64)
        return self._areas

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (boxes, scores and every cropped mask)."""
        return int(self.boxes.nbytes + self.scores.nbytes + sum(c.nbytes for c in self.crops))

    def mask(self, index: int) -> np.ndarray:
        """Mask ``index`` at full image size (H×W bool)."""
        y0, x0, y1, x1 = self.boxes[index]
        out = np.zeros(self.shape, bool)
        out[y0:y1, x0:x1] = self.crops[index]
        return out

    def crop_in(self, index: int, box) -> np.ndarray:
        """Mask ``index`` inside any other box ``(y0, x0, y1, x1)`` of the image (e.g. a box with margin)."""
        by0, bx0, by1, bx1 = (int(v) for v in box)
        y0, x0, y1, x1 = self.boxes[index]
        out = np.zeros((by1 - by0, bx1 - bx0), bool)
        sy0, sx0, sy1, sx1 = max(y0, by0), max(x0, bx0), min(y1, by1), min(x1, bx1)
        if sy1 > sy0 and sx1 > sx0:
            part = self.crops[index][sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
            out[sy0 - by0 : sy1 - by0, sx0 - bx0 : sx1 - bx0] = part
        return out

    def to_stack(self) -> np.ndarray:
        """K×H×W bool: the dense form, K × H × W bytes — for small images and tests only."""
        out = np.zeros((len(self), *self.shape), bool)
        for k, ((y0, x0, y1, x1), crop) in enumerate(self):
            out[k, y0:y1, x0:x1] = crop
        return out

    def union(self) -> np.ndarray:
        """H×W bool: pixels covered by any mask."""
        out = np.zeros(self.shape, bool)
        for (y0, x0, y1, x1), crop in self:
            out[y0:y1, x0:x1] |= crop
        return out

    def paint(self, values, order=None, out: np.ndarray | None = None) -> np.ndarray:
        """H×W int32 with mask k painted ``values[k]``, in ``order`` (later masks cover earlier ones)."""
        out = np.zeros(self.shape, np.int32) if out is None else out
        for k in range(len(self)) if order is None else order:
            y0, x0, y1, x1 = self.boxes[k]
            out[y0:y1, x0:x1][self.crops[k]] = values[k]
        return out

    def subset(self, index) -> Masks:
        """The masks at ``index`` (indices or a bool selector), in that order."""
        index = _positions(index)
        return Masks(self.shape, self.boxes[index], [self.crops[k] for k in index], self.scores[index])

    def resized(self, shape) -> Masks:
        """The masks on the same image resampled to ``shape`` (e.g. results at a model's pixel size
        mapped back to the input's grid): each box scaled, each crop resized inside it (bilinear on the
        mask, kept where ≥ 0.5). A mask too small to keep a pixel keeps its centre pixel."""
        import cv2

        height, width = int(shape[0]), int(shape[1])
        sy, sx = height / self.shape[0], width / self.shape[1]
        boxes, crops = [], []
        for (y0, x0, y1, x1), crop in self:
            ny0, nx0 = min(int(np.floor(y0 * sy)), height - 1), min(int(np.floor(x0 * sx)), width - 1)
            ny1, nx1 = max(min(int(np.ceil(y1 * sy)), height), ny0 + 1), max(min(int(np.ceil(x1 * sx)), width), nx0 + 1)
            scaled = cv2.resize(crop.astype(np.float32), (nx1 - nx0, ny1 - ny0), interpolation=cv2.INTER_LINEAR)
            kept = scaled.reshape(ny1 - ny0, nx1 - nx0) >= 0.5
            if not kept.any():
                kept[(ny1 - ny0) // 2, (nx1 - nx0) // 2] = True
            boxes.append((ny0, nx0, ny1, nx1))
            crops.append(kept)
        return Masks((height, width), boxes, crops, self.scores)

    def rle(self) -> list[dict]:
        """COCO compressed RLE of each mask at full image size (pycocotools' format), computed from the
        crop: memory per mask is its runs, never an H×W array."""
        from pycocotools import mask as mask_utils

        height, width = self.shape
        out = []
        for (y0, x0, _, _), crop in self:
            # Column-major (COCO) order: column x holds flat indices x·H + y. Runs of 1s inside each
            # crop column start where the column steps up and end where it steps down.
            columns = np.pad(crop.T.astype(np.int8), ((0, 0), (1, 1)))
            steps = np.diff(columns, axis=1)
            col, row = np.nonzero(steps)  # sorted by column, then row: starts and ends alternate
            position = (x0 + col) * height + y0 + row
            starts, ends = position[steps[col, row] > 0], position[steps[col, row] < 0]
            # Runs that end at a column's bottom and restart at the next column's top are one run.
            joined = np.flatnonzero(starts[1:] == ends[:-1])
            starts, ends = np.delete(starts, joined + 1), np.delete(ends, joined)
            bounds = np.empty(2 * len(starts) + 2, np.int64)
            bounds[0], bounds[-1] = 0, height * width
            bounds[1:-1:2], bounds[2:-1:2] = starts, ends
            counts = np.diff(bounds)
            if counts[-1] == 0:  # the mask reaches the last pixel: COCO ends on that run of 1s
                counts = counts[:-1]
            out.append(mask_utils.frPyObjects({"counts": counts.tolist(), "size": [height, width]}, height, width))
        return out


class CellSet:
    """Every cell of one image with its nuclei, overlaps intact.

    ``cells``  :class:`Masks` of the whole cells (cytoplasm incl. nucleus), with their scores.
    ``ids``    N int32 cell ids (default 1..N): the id that links a cell across every output.
    ``nuclei`` :class:`Masks` of the nuclei, objects of their own.
    ``nucleus_cell_ids`` M int32: the id of each nucleus's cell, 0 for a nucleus in no cell. When not
               given, a nucleus goes to the cell covering most of it (the smaller on a tie: in an
               overlap the nucleus more likely belongs to the small cell lying on the large one).
    """

    def __init__(self, cells: Masks, ids=None, nuclei: Masks | None = None, nucleus_cell_ids=None):
        self.cells = cells
        self.ids = np.arange(1, len(cells) + 1, dtype=np.int32) if ids is None else np.asarray(ids, np.int32)
        if len(self.ids) != len(cells) or len(np.unique(self.ids)) != len(self.ids) or np.any(self.ids <= 0):
            raise ValueError(f"{len(cells)} cells need as many distinct positive ids; got {self.ids.tolist()[:10]}…")
        self.nuclei = Masks(cells.shape) if nuclei is None else nuclei
        if self.nuclei.shape != cells.shape:
            raise ValueError(f"nuclei are on a {self.nuclei.shape} image, the cells on {cells.shape}")
        if nucleus_cell_ids is None:
            nucleus_cell_ids = self._owners()
        self.nucleus_cell_ids = np.asarray(nucleus_cell_ids, np.int32).reshape(-1)
        if len(self.nucleus_cell_ids) != len(self.nuclei):
            raise ValueError(f"{len(self.nuclei)} nuclei but {len(self.nucleus_cell_ids)} nucleus cell ids")
        unknown = set(self.nucleus_cell_ids.tolist()) - set(self.ids.tolist()) - {0}
        if unknown:
            raise ValueError(f"nuclei linked to cell ids that do not exist: {sorted(unknown)[:10]}")

    # ------------------------------------------------------------------------------------ building

    @classmethod
    def from_stack(cls, cells, scores=None, nuclei=None, nucleus_scores=None, nucleus_cell_ids=None, shape=None):
        """From N×H×W cell masks (or an iterable of H×W masks) and optional M×H×W nucleus masks.

        Cell i gets id i + 1; an empty cell mask is left out (its id stays unused).
        """
        cell_masks, kept = Masks.from_stack(cells, shape, scores)
        nucleus_masks = None
        if nuclei is not None:
            nucleus_masks, kept_nuclei = Masks.from_stack(nuclei, cell_masks.shape, nucleus_scores)
            if nucleus_cell_ids is not None:
                nucleus_cell_ids = np.asarray(nucleus_cell_ids)[kept_nuclei]
        return cls(cell_masks, kept + 1, nucleus_masks, nucleus_cell_ids)

    @classmethod
    def from_labels(cls, labels: np.ndarray, nuclei=None) -> CellSet:
        """From an H×W cell label image (id = label value; cells cannot overlap in it) and optionally
        nuclei as an H×W bool mask (see :meth:`with_nuclei_mask`)."""
        masks, values = Masks.from_labels(labels)
        cell_set = cls(masks, values)
        return cell_set if nuclei is None else cell_set.with_nuclei_mask(nuclei)

    @classmethod
    def from_rle(cls, shape, cell_rles=(), cell_scores=None, nucleus_rles=(), nucleus_scores=None) -> CellSet:
        """From COCO RLE dicts of cells and nuclei (nuclei linked to cells by coverage)."""
        cells = Masks.from_rle(list(cell_rles), cell_scores) if len(cell_rles) else Masks(shape)
        nuclei = Masks.from_rle(list(nucleus_rles), nucleus_scores) if len(nucleus_rles) else Masks(shape)
        for what, masks in (("cell", cells), ("nucleus", nuclei)):
            if masks.shape != tuple(shape):
                raise ValueError(f"{what} RLEs are {masks.shape}, the image is {tuple(shape)}")
        return cls(cells, nuclei=nuclei)

    def with_nuclei_mask(self, nuclei) -> CellSet:
        """The same cells with nuclei taken from an H×W bool union mask: one nucleus per connected
        component (:func:`~napari_cervix.geometry.label_components`), linked to cells by coverage."""
        nuclei = np.asarray(nuclei, bool)
        if nuclei.shape != self.shape:
            raise ValueError(f"nucleus mask is {nuclei.shape}, the cells' image is {self.shape}")
        masks, _ = Masks.from_labels(label_components(nuclei))
        return CellSet(self.cells, self.ids, masks)

    def _owners(self) -> np.ndarray:
        owners = np.zeros(len(self.nuclei), np.int32)
        if not len(self.cells):
            return owners
        boxes, areas = self.cells.boxes, self.cells.areas
        for k, (box, nucleus) in enumerate(self.nuclei):
            near = np.flatnonzero(
                (boxes[:, 0] < box[2]) & (box[0] < boxes[:, 2]) & (boxes[:, 1] < box[3]) & (box[1] < boxes[:, 3])
            )
            if not len(near):
                continue
            covered = np.array([np.count_nonzero(self.cells.crop_in(i, box) & nucleus) for i in near])
            if covered.max() == 0:
                continue
            best = near[covered == covered.max()]
            owners[k] = self.ids[best[np.argmin(areas[best])]]
        return owners

    # ------------------------------------------------------------------------------------ reading

    @property
    def shape(self) -> tuple[int, int]:
        return self.cells.shape

    def __len__(self) -> int:
        return len(self.cells)

    def __iter__(self) -> Iterator[tuple[int, tuple[int, int, int, int], np.ndarray]]:
        """(cell id, box, cropped mask) per cell."""
        for cell_id, (box, crop) in zip(self.ids, self.cells):
            yield int(cell_id), box, crop

    @property
    def boxes(self) -> np.ndarray:
        return self.cells.boxes

    @property
    def scores(self) -> np.ndarray:
        return self.cells.scores

    @property
    def areas(self) -> np.ndarray:
        return self.cells.areas

    @property
    def nbytes(self) -> int:
        return int(self.cells.nbytes + self.ids.nbytes + self.nuclei.nbytes + self.nucleus_cell_ids.nbytes)

    def index_of(self, cell_id: int) -> int:
        """Position of the cell with id ``cell_id``."""
        found = np.flatnonzero(self.ids == int(cell_id))
        if not len(found):
            raise KeyError(f"no cell with id {cell_id}")
        return int(found[0])

    def union(self) -> np.ndarray:
        """H×W bool: pixels inside any cell."""
        return self.cells.union()

    def to_stack(self) -> np.ndarray:
        """N×H×W bool cell masks in id order of :attr:`ids` — dense: for small images and tests only."""
        return self.cells.to_stack()

    def cell_labels(self) -> np.ndarray:
        """H×W int32 cell ids, overlaps resolved by one rule: **the smallest cell wins**.

        A pixel covered by several cells gets the id of the smallest of them, so a small cell lying on a
        large one stays visible whole, and every cell keeps its non-overlapped part.
        """
        return self.cells.paint(self.ids, smallest_wins_order(self.areas))

    def nucleus_labels(self) -> np.ndarray:
        """H×W int32: each nucleus painted with its cell's id (several nuclei of one cell share it).

        A nucleus in no cell gets an id above every cell id (max + 1, + 2, … in order of falling
        area), so it stays visible and is never taken for another cell's nucleus.
        """
        order = np.argsort(-self.nuclei.areas, kind="stable")
        values = self.nucleus_cell_ids.copy()
        orphans = order[values[order] == 0]
        first = int(self.ids.max()) + 1 if len(self.ids) else 1
        values[orphans] = np.arange(first, first + len(orphans))
        return self.nuclei.paint(values, order)

    def nuclei_per_cell(self) -> np.ndarray:
        """N int: how many nuclei each cell holds, in cell order."""
        position = {int(cell_id): k for k, cell_id in enumerate(self.ids)}
        counts = np.zeros(len(self), np.int64)
        for cell_id in self.nucleus_cell_ids:
            if cell_id:
                counts[position[int(cell_id)]] += 1
        return counts

    def subset(self, index) -> CellSet:
        """The cells at ``index`` (indices or a bool selector) with their ids, and the nuclei of those
        cells (nuclei of dropped cells go; nuclei in no cell stay)."""
        index = _positions(index)
        cells, ids = self.cells.subset(index), self.ids[index]
        keep = (self.nucleus_cell_ids == 0) | np.isin(self.nucleus_cell_ids, ids)
        return CellSet(cells, ids, self.nuclei.subset(keep), self.nucleus_cell_ids[keep])

    def resized(self, shape) -> CellSet:
        """The same cells (ids, scores, nucleus links kept) on the image resampled to ``shape``."""
        return CellSet(self.cells.resized(shape), self.ids, self.nuclei.resized(shape), self.nucleus_cell_ids)

    def filter(self, min_score: float) -> CellSet:
        """Cells and nuclei scoring at least ``min_score``."""
        kept = self.subset(self.scores >= min_score)
        keep = kept.nuclei.scores >= min_score
        return CellSet(kept.cells, kept.ids, kept.nuclei.subset(keep), kept.nucleus_cell_ids[keep])
