"""Training fields for the instance model: compositing augmentation plus random crops of real fields.

The ISBI 2014 synthetic images were made by taking isolated cells from real smears, applying random
rigid transforms and linear luminance changes, and laying them over each other translucently. This
module does the same with the annotated cells of the training split, so a few dozen images yield an
unlimited stream of new overlapping fields:

* each annotated cell becomes a *sprite*: its mask, its nuclei, and its **transmittance** ``T = I / B``
  (image over the local background ``B``, estimated by inpainting the cells away). Where annotated cells
  overlap, the observed absorption is shared between them (``T^(1/n)`` for ``n`` covering cells);
* a new field is a background (a cell-free background of the same domain) times the product of the
  transmittances of randomly rotated, flipped, slightly scaled, translated sprites, each with a random
  optical-density change ``T^γ`` — Beer–Lambert: overlapping cytoplasm gets darker, and both cells stay
  visible through each other, as in brightfield smears;
* cells are placed near already placed cells more often than not, so overlaps of every degree are common.

Real fields are kept as they were annotated, sparse (per instance a box and the mask cropped to it: a
CRIC field has ~200 nuclei), and cut into training crops at a random scale (:data:`SCALE_RANGE`), so a
model meets nuclei a little larger and smaller than its pixel size makes them.

numpy + OpenCV (headless) only; no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from ..cellset import CellSet, Masks
from ..geometry import label_components

MIN_CELL_PIXELS = 300  # smaller cell fragments (at field borders) are dropped from the targets
MIN_NUCLEUS_PIXELS = 12  # annotation specks (the ISBI COCO has 1-pixel "nuclei") are not nuclei
#: Scale jitter of the crops of real fields (log-uniform): users' pixel sizes are given or estimated to
#: within about this much.
SCALE_RANGE = (0.8, 1.25)


@dataclass
class Sprite:
    transmittance: np.ndarray  # h×w float32, 1 outside the cell
    mask: np.ndarray  # h×w bool, the whole cell
    nuclei: np.ndarray  # h×w bool, the cell's own nuclei


@dataclass
class Field:
    """One training image with instance targets: ``labels`` 0 = cell, 1 = nucleus."""

    image: np.ndarray  # H×W float32, 0–255
    masks: np.ndarray  # K×H×W bool
    labels: np.ndarray  # K int64


@dataclass
class AnnotatedField:
    """A real annotated field as the training source keeps it: the instances sparse."""

    image: np.ndarray  # H×W float32, 0–255
    instances: Masks  # cells, then nuclei
    labels: np.ndarray  # K int64: 0 = cell, 1 = nucleus


def nucleus_instances(nuclei: np.ndarray | None, shape) -> Masks:
    """The union nucleus mask split into 8-connected components (one instance each, the one nucleus rule
    of :mod:`napari_cervix.geometry`), specks dropped."""
    if nuclei is None or not np.any(nuclei):
        return Masks(tuple(shape))
    masks, _ = Masks.from_labels(label_components(nuclei))
    return masks.subset(masks.areas >= MIN_NUCLEUS_PIXELS)


def estimate_background(image: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Smooth background under the annotated ``objects`` (H×W bool): the free pixels, inpainted at ¼ scale.

    Quarter scale keeps OpenCV's inpainting fast on 1024² fields with large holes; the background
    varies slowly, so nothing is lost.
    """
    h, w = image.shape
    covered = ndimage.binary_dilation(objects, iterations=3)
    small = cv2.resize(image, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
    hole = cv2.resize(covered.astype(np.uint8), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
    if hole.all():
        return np.full((h, w), float(np.percentile(image, 95)), np.float32)
    filled = cv2.inpaint(np.clip(small, 0, 255).astype(np.uint8), hole, 5, cv2.INPAINT_TELEA)
    filled = cv2.GaussianBlur(filled.astype(np.float32), (0, 0), 2.0)
    return np.maximum(cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR), 1.0).astype(np.float32)


class FieldSource:
    """Annotated samples of one domain (e.g. ISBI 2014 synthetic, or real EDF frames), ready to draw
    training fields from: sprites, cell-free backgrounds, and the fields themselves for random crops."""

    def __init__(self, samples, name: str = ""):
        from .model import prepare_gray

        self.name = name
        self.fields: list[AnnotatedField] = []
        self.sprites: list[Sprite] = []
        self.backgrounds: list[np.ndarray] = []
        self.noise = []
        for sample in samples:
            if sample.cells is None:
                raise ValueError(
                    f"{sample.name or 'a sample'} has no per-cell annotation; instance "
                    "training needs whole-cell masks (ISBI 2014/2015 or COCO with 'cell')"
                )
            image = prepare_gray(sample.image, name=sample.name or "image")
            nuclei = nucleus_instances(sample.nuclei, image.shape)
            # The cells big enough to learn from, each linked to the nuclei it covers most.
            big = sample.cells.subset(sample.cells.areas >= MIN_CELL_PIXELS)
            cells = CellSet(big.cells, big.ids, nuclei)
            instances = Masks.concatenate([cells.cells, nuclei])
            labels = np.array([0] * len(cells) + [1] * len(nuclei), np.int64)
            self.fields.append(AnnotatedField(image, instances, labels))
            # Nuclei in no annotated cell (leukocytes, cells without a mask) are annotated objects too:
            # a background showing them would paste them into composites as unlabelled background.
            objects = cells.union() | nuclei.union()
            background = estimate_background(image, objects)
            self.backgrounds.append(self._clean_background(image, objects, background))
            residual = (image - background)[~objects]
            self.noise.append(float(np.std(residual)) if residual.size else 2.0)
            self.sprites.extend(self._sprites(image, cells, background))
        if not self.fields:
            raise ValueError(f"no training samples in {name or 'the dataset'}")

    @staticmethod
    def _clean_background(image, objects: np.ndarray, background):
        """The field with its annotated objects replaced by the smooth background."""
        if not objects.any():
            return image.copy()
        covered = ndimage.binary_dilation(objects, iterations=3)
        out = image.copy()
        out[covered] = background[covered]
        return out

    @staticmethod
    def _sprites(image, cells: CellSet, background):
        if not len(cells):
            return []
        cover = np.zeros(image.shape, np.float32)
        for _, (y0, x0, y1, x1), crop in cells:
            cover[y0:y1, x0:x1] += crop
        transmittance = np.clip(image / background, 0.02, 1.2) ** (1.0 / np.maximum(cover, 1.0))
        sprites = []
        height, width = image.shape
        for cell_id, (y0, x0, y1, x1), mask in cells:
            if y0 == 0 or x0 == 0 or y1 == height or x1 == width:
                continue  # cut by the field's border: its straight edge would be pasted as a cell edge
            t = np.where(mask, transmittance[y0:y1, x0:x1], 1.0).astype(np.float32)
            own = np.zeros_like(mask)
            for k in np.flatnonzero(cells.nucleus_cell_ids == cell_id):
                own |= cells.nuclei.crop_in(k, (y0, x0, y1, x1))
            sprites.append(Sprite(t, mask, own & mask))
        return sprites


def _transform_sprite(sprite: Sprite, rng: np.random.Generator):
    """Random rigid transform (rotation, flip), ±15 % scale and an optical-density change of a sprite."""
    t, mask, nuc = sprite.transmittance, sprite.mask, sprite.nuclei
    if rng.random() < 0.5:
        t, mask, nuc = t[:, ::-1], mask[:, ::-1], nuc[:, ::-1]
    h, w = mask.shape
    angle = float(rng.uniform(0, 360))
    scale = float(rng.uniform(0.85, 1.15))
    side = int(np.ceil(np.hypot(h, w) * scale)) + 2
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
    matrix[:, 2] += (side / 2.0 - w / 2.0, side / 2.0 - h / 2.0)
    size = (side, side)
    t = cv2.warpAffine(
        np.ascontiguousarray(t), matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1.0
    )
    mask = cv2.warpAffine(np.ascontiguousarray(mask, np.float32), matrix, size, flags=cv2.INTER_LINEAR) > 0.5
    nuc = cv2.warpAffine(np.ascontiguousarray(nuc, np.float32), matrix, size, flags=cv2.INTER_LINEAR) > 0.5
    gamma = float(rng.uniform(0.6, 1.5))  # optical density ×γ (linear luminance change of −log T)
    t = np.where(mask, np.clip(t, 0.02, 1.0) ** gamma, 1.0).astype(np.float32)
    return t, mask, nuc


def _paste(canvas: np.ndarray, part: np.ndarray, y: int, x: int, op) -> None:
    h, w = part.shape
    H, W = canvas.shape
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, H), min(x + w, W)
    if y1 <= y0 or x1 <= x0:
        return
    region = canvas[y0:y1, x0:x1]
    canvas[y0:y1, x0:x1] = op(region, part[y0 - y : y1 - y, x0 - x : x1 - x])


def compose_field(source: FieldSource, rng: np.random.Generator, size: int = 512, n_cells: int | None = None) -> Field:
    """A new overlapping field of ``n_cells`` (default 2–10, as in ISBI 2014) sprites of ``source``."""
    if not source.sprites:
        raise ValueError(f"{source.name or 'the dataset'} has no annotated cells to composite")
    background = random_window(source.backgrounds[rng.integers(len(source.backgrounds))], size, rng)
    background = background * float(rng.uniform(0.88, 1.08))
    n_cells = int(n_cells if n_cells is not None else rng.integers(2, 11))
    transmit = np.ones((size, size), np.float32)
    cells, nuclei, centres = [], [], []
    for _ in range(n_cells):
        t, mask, nuc = _transform_sprite(source.sprites[rng.integers(len(source.sprites))], rng)
        h, w = mask.shape
        if centres and rng.random() < 0.65:  # overlap an already placed cell, by 30–90 % of a radius
            cy, cx, radius = centres[rng.integers(len(centres))]
            angle = rng.uniform(0, 2 * np.pi)
            dist = rng.uniform(0.3, 0.9) * (radius + max(h, w) / 4.0)
            cy, cx = cy + dist * np.sin(angle), cx + dist * np.cos(angle)
        else:
            cy, cx = rng.uniform(0.2, 0.8) * size, rng.uniform(0.2, 0.8) * size
        y, x = int(round(cy - h / 2.0)), int(round(cx - w / 2.0))
        _paste(transmit, t, y, x, np.multiply)
        cell = np.zeros((size, size), bool)
        _paste(cell, mask, y, x, np.logical_or)
        if cell.sum() < MIN_CELL_PIXELS:
            continue
        centres.append((cy, cx, max(h, w) / 4.0))
        cells.append(cell)
        own = np.zeros((size, size), bool)
        _paste(own, nuc, y, x, np.logical_or)
        nuclei.extend(nucleus_instances(own, own.shape).to_stack())
    noise_sigma = source.noise[rng.integers(len(source.noise))]
    image = background * transmit + rng.normal(0.0, 0.5 * noise_sigma + 0.5, (size, size))
    image = np.clip(image, 0, 255).astype(np.float32)
    masks = np.array(cells + nuclei, bool).reshape(-1, size, size)
    labels = np.array([0] * len(cells) + [1] * len(nuclei), np.int64)
    return Field(image, masks, labels)


def random_window(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random size×size window (scale-jittered, flipped/rotated by 90°) of an image, padded by
    reflection if smaller."""
    empty = AnnotatedField(image, Masks(image.shape), np.zeros(0, np.int64))
    return crop_field(empty, size, rng).image


def crop_field(
    field: AnnotatedField, size: int, rng: np.random.Generator, scale_range: tuple[float, float] = SCALE_RANGE
) -> Field:
    """A random size×size crop of a real field with its instances (cut parts kept if big enough),
    magnified by a log-uniform factor in ``scale_range``, randomly flipped and rotated by multiples of 90°."""
    scale = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    window = max(int(round(size / scale)), 1)
    image = field.image
    h, w = image.shape
    if h < window or w < window:
        # Padded after the last row and column, so the instances' boxes stay where they are.
        image = np.pad(image, ((0, max(window - h, 0)), (0, max(window - w, 0))), mode="reflect")
        h, w = image.shape
    y = int(rng.integers(0, h - window + 1))
    x = int(rng.integers(0, w - window + 1))
    box = (y, x, y + window, x + window)
    boxes = field.instances.boxes.reshape(-1, 4)
    inside = np.flatnonzero((boxes[:, 0] < box[2]) & (boxes[:, 2] > y) & (boxes[:, 1] < box[3]) & (boxes[:, 3] > x))
    image = image[y : box[2], x : box[3]]
    masks = [field.instances.crop_in(k, box) for k in inside]
    if window != size:
        shrink = cv2.INTER_AREA if window > size else cv2.INTER_LINEAR
        image = cv2.resize(np.ascontiguousarray(image, np.float32), (size, size), interpolation=shrink)
        masks = [cv2.resize(m.view(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST).view(bool) for m in masks]
    stack = np.array(masks, bool).reshape(-1, size, size)
    k = int(rng.integers(4))
    image, stack = np.rot90(image, k), np.rot90(stack, k, axes=(1, 2))
    if rng.random() < 0.5:
        image, stack = image[:, ::-1], stack[:, :, ::-1]
    labels = field.labels[inside]
    keep = stack.sum(axis=(1, 2)) >= np.where(labels == 0, MIN_CELL_PIXELS, MIN_NUCLEUS_PIXELS)
    return Field(np.ascontiguousarray(image, np.float32), np.ascontiguousarray(stack[keep]), labels[keep])


def photometric(field: Field, rng: np.random.Generator) -> Field:
    """Contrast/brightness/gamma jitter, slight blur or noise: microscopes and stains differ."""
    image = field.image / 255.0
    image = np.clip(image, 0, 1) ** float(rng.uniform(0.8, 1.25))
    image = (image - 0.5) * float(rng.uniform(0.8, 1.2)) + 0.5 + float(rng.uniform(-0.06, 0.06))
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), float(rng.uniform(0.5, 1.2)))
    if rng.random() < 0.3:
        image = image + rng.normal(0, rng.uniform(0.005, 0.02), image.shape)
    out = np.clip(image * 255.0, 0, 255).astype(np.float32)
    return Field(out, field.masks, field.labels)


def draw_field(
    sources: list[FieldSource], rng: np.random.Generator, size: int = 512, p_composite: float = 0.5
) -> Field:
    """One training field: a domain at random, then a composite (``p_composite``) or a real crop."""
    source = sources[rng.integers(len(sources))]
    if source.sprites and rng.random() < p_composite:
        field = compose_field(source, rng, size)
    else:
        field = crop_field(source.fields[rng.integers(len(source.fields))], size, rng)
    return photometric(field, rng)
