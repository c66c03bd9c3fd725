"""Pixel size: run every model at the scale it was trained at, whatever the user's magnification.

A model's card records the pixel size (µm per pixel) of its training images (``card.input.pixel_size_um``)
and the typical area of the nuclei it finds there (``card.input.nucleus_area_px``). An image goes in at
its own pixel size: given by the user (``pixel_size_um=``, a napari layer's ``scale``, a slide's
metadata) or, when nobody knows it, **estimated from the image itself** — as cellpose's size model
estimates a cell diameter — from the area of the nuclei the model finds: the image is resampled by
``factor`` so that one of its pixels is one of the model's, the model runs, and the results are mapped
back onto the input's pixel grid.

The estimate (:func:`estimate_scale`) runs the model on the image resampled by a few probe factors. A
nucleus seen much larger than in training is broken into fragments by the network, so the probe at the
image's own scale cannot tell a magnified image from one of tiny nuclei; a probe that shrinks the image
far enough sees whole nuclei again. Each probe's own estimate is ``probe × sqrt(reference / measured)``;
the probe whose estimate lies closest to itself (the network saw nuclei at the size it knows) wins —
among the probes that still find at least :data:`MIN_COUNT_SHARE` of the median count of nuclei over the
probes: shrunk too far, a field's nuclei fall below the speck size and vanish, and the handful of clusters
left can pass the self-consistency test by chance (CRIC validation fields resampled to 0.75× were estimated
up to 4.5× too magnified that way: ``benchmarks/real_fields.py --scales 0.75 --modes estimated`` before this
rule), whereas a probe that sees a magnified field's nuclei whole counts about as many as the others once its
fragments have merged. The median, not the largest count, because a probe that fragments large nuclei
inflates its count. Nor can a probe win once the nuclei have been lost on the way to it: when a probe's nuclei
cover less than :data:`MIN_COVER_SHARE` of the image area that the next larger probe's covered, they fell below the
speck size there, and whatever that probe and the smaller ones still find (clumps of cells, which a network
reads as nuclei once they are shrunk to a nucleus's size) says nothing about the nuclei. Fragments merging
into whole nuclei keep their area; vanishing nuclei lose it. (A generated 2048² gray field at its training
scale: 114, 72, 8 and 18 nuclei in the four probes, and the quarter probe's 18 clumps, self-consistent by
chance, won the estimate at 0.24× before this rule.)
Within :data:`DEAD_BAND` of 1 the image is left as it is: the models were trained with scale
augmentation over that range, and resampling would only cost time and sharpness.

Reference sizes (``nucleus_area_px``) are the median over a model's training fields of each field's
median nucleus area as the model itself segments it; pixel sizes of data sets whose µm per pixel is
unknown are estimated from their normal nuclei (see :data:`REFERENCE_NUCLEUS_AREA_UM2`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

#: Area of a normal intermediate squamous cell's nucleus, about 35 µm² (The Bethesda System atlas, the
#: yardstick of its ASC-US/LSIL nuclear-size criteria). Data sets with unknown optics get their pixel size
#: from it: µm/px = sqrt(35 / median area in px² of their normal nuclei).
REFERENCE_NUCLEUS_AREA_UM2 = 35.0
#: Resampling factors this close to 1 are not applied (the models' scale augmentation covers them).
DEAD_BAND = (0.8, 1.25)
#: A given pixel size within this fraction of the model's runs the image as it is (a sub-pixel change).
GIVEN_TOLERANCE = 0.05
#: Probe factors of the estimate: the image as it is, and shrunk for magnified images.
PROBE_FACTORS = (1.0, 0.63, 0.4, 0.25)
#: Components smaller than this (px², at the model's scale) are specks, not nuclei, for the estimate.
MIN_NUCLEUS_AREA_PX = 30
#: The estimate needs at least this many nuclei in a probe; fewer say nothing about the scale.
MIN_NUCLEI = 5
#: A probe that finds fewer than this share of the median count of nuclei over the probes lost them to the
#: speck size: it says nothing about the scale (see the module docstring).
MIN_COUNT_SHARE = 1 / 3
#: A probe whose nuclei cover less than this share of the area (in the image's own pixels) that the next
#: larger probe's nuclei covered lost them to the speck size: it and the smaller probes cannot win. On the
#: CRIC validation fields at 0.75–2.5× no probe on the way to the winning one fell below 0.76; the generated
#: gray fields' collapse to the 0.4 probe is 0.16–0.44 (session 25; every share from 0.3 to 0.7 chose the
#: same estimates on those fields).
MIN_COVER_SHARE = 0.5
#: The estimate looks at a central window of at most this many pixels a side (a whole slide tile or field
#: holds enough nuclei; a larger image would only cost time).
PROBE_SIDE = 2048
#: Estimated factors are kept in this range (an image 8× off the training scale is not a smear field).
FACTOR_RANGE = (0.125, 8.0)


@dataclass(frozen=True)
class Scale:
    """How an image is run: resampled by ``factor`` (1 = as it is) to the model's pixel size.

    ``pixel_size_um`` is the image's µm per pixel (given, or estimated when the model's is known);
    ``source`` says where the factor comes from: "given" (the user's pixel size), "estimated" (from the
    image's nuclei), "model" (no pixel size is known for the model or the image, run as it is) or "off"
    (estimation switched off). ``estimated_factor`` is the estimate before :data:`DEAD_BAND` (None when not
    estimated); ``nucleus_area_px`` the winning probe's median nucleus area at the model's scale.
    """

    factor: float = 1.0
    source: str = "model"
    pixel_size_um: float | None = None
    estimated_factor: float | None = None
    nucleus_area_px: float | None = None

    @property
    def resamples(self) -> bool:
        return self.factor != 1.0

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def resample(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` (H×W or H×W×C) resized by ``factor`` (area averaging when shrinking, bilinear when
    enlarging, as cv2 recommends); the input is not modified."""
    import cv2

    image = np.asarray(image)
    if factor == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    if image.dtype == bool:
        return cv2.resize(image.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    work = image if image.dtype in (np.uint8, np.uint16, np.float32) else image.astype(np.float32)
    out = cv2.resize(work, size, interpolation=interpolation)
    return out.astype(image.dtype, copy=False)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A label image (any integer dtype) resized to ``shape`` by nearest neighbour: labels stay labels."""
    import cv2

    labels = np.asarray(labels)
    if labels.shape[:2] == tuple(shape):
        return labels
    size = (int(shape[1]), int(shape[0]))
    if labels.dtype in (np.uint8, np.uint16, np.int16, np.int32, np.float32):
        return cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    return cv2.resize(labels.astype(np.int32), size, interpolation=cv2.INTER_NEAREST).astype(labels.dtype)


def resize_probabilities(probs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """C×H×W probabilities resized to ``shape`` (bilinear; each pixel still sums to 1)."""
    import cv2

    if probs.shape[1:] == tuple(shape):
        return probs
    size = (int(shape[1]), int(shape[0]))
    return np.stack([cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) for p in probs]).astype(np.float32)


def probe_window(image) -> np.ndarray:
    """The central window of at most :data:`PROBE_SIDE` a side the estimate reads (the whole image when
    it fits; only that window is read from a lazy array)."""
    height, width = int(image.shape[0]), int(image.shape[1])
    y0, x0 = max(0, (height - PROBE_SIDE) // 2), max(0, (width - PROBE_SIDE) // 2)
    window = image[y0 : y0 + PROBE_SIDE, x0 : x0 + PROBE_SIDE]
    return window if isinstance(window, np.ndarray) else np.asarray(window)


def nucleus_areas(nuclei: np.ndarray) -> np.ndarray:
    """Areas in px² of the nuclei (connected components) of a bool mask, specks left out."""
    from .geometry import label_components

    areas = np.bincount(label_components(np.asarray(nuclei, bool)).ravel())[1:]
    return areas[areas >= MIN_NUCLEUS_AREA_PX]


def median_nucleus_area(nuclei: np.ndarray) -> tuple[float | None, int]:
    """(median area in px² of the nuclei of a bool mask, their count), specks left out; (None, n) when
    there are fewer than :data:`MIN_NUCLEI`."""
    areas = nucleus_areas(nuclei)
    if len(areas) < MIN_NUCLEI:
        return None, int(len(areas))
    return float(np.median(areas)), int(len(areas))


def estimate_factor(
    image: np.ndarray, find_nuclei: Callable[[np.ndarray], np.ndarray], reference_area_px: float
) -> tuple[float | None, float | None, dict]:
    """(factor, the winning probe's median area, probes) bringing ``image`` to the scale at which
    ``find_nuclei`` (image → bool nucleus mask) sees nuclei of ``reference_area_px``; factor None when no
    probe finds enough nuclei. ``probes`` maps each probe factor to its own estimate (None: too few nuclei;
    a probe with fewer than :data:`MIN_COUNT_SHARE` of the probes' median count, or one at or after a loss
    of the nuclei's cover (:data:`MIN_COVER_SHARE`), keeps its estimate here but cannot win)."""
    probes, found, counts = {}, {}, []
    lost, previous_cover = False, None
    for probe in sorted(PROBE_FACTORS, reverse=True):
        areas = nucleus_areas(find_nuclei(resample(image, probe)))
        area = float(np.median(areas)) if len(areas) >= MIN_NUCLEI else None
        probes[probe] = None if area is None else probe * math.sqrt(reference_area_px / area)
        counts.append(len(areas))
        cover = float(areas.sum()) / probe**2  # in the image's own pixels, comparable across probes
        lost = lost or (previous_cover is not None and cover < MIN_COVER_SHARE * previous_cover)
        previous_cover = cover
        if area is not None and not lost:
            found[probe] = (area, len(areas))
    typical_count = float(np.median(counts))
    best = None
    for probe, (area, count) in found.items():
        if count < MIN_COUNT_SHARE * typical_count:
            continue
        distance = abs(math.log(probes[probe] / probe))
        if best is None or distance < best[0]:
            best = (distance, probes[probe], area)
    if best is None:
        return None, None, probes
    factor = float(np.clip(best[1], *FACTOR_RANGE))
    return factor, best[2], probes


def plan_scale(
    image,
    model_pixel_size_um: float | None,
    reference_area_px: float | None,
    find_nuclei: Callable[[np.ndarray], np.ndarray] | None,
    pixel_size_um: float | None = None,
    estimate: bool = True,
) -> Scale:
    """The :class:`Scale` to run ``image`` at, for a model trained at ``model_pixel_size_um``.

    ``pixel_size_um`` given: factor = image pixel size / model pixel size (a model that does not record
    its pixel size runs the image as it is). Not given and ``estimate``: estimated from the image with
    ``find_nuclei`` against ``reference_area_px`` (see :func:`estimate_factor`), applied outside
    :data:`DEAD_BAND`.
    """
    if pixel_size_um is not None:
        pixel_size_um = float(pixel_size_um)
        if not math.isfinite(pixel_size_um) or pixel_size_um <= 0:
            raise ValueError(f"pixel_size_um must be a positive number of µm per pixel, got {pixel_size_um!r}")
        if model_pixel_size_um is None:
            return Scale(1.0, "model", pixel_size_um)
        return _given(pixel_size_um / model_pixel_size_um, pixel_size_um)
    if not estimate:
        return Scale(1.0, "off")
    if reference_area_px is None or find_nuclei is None:
        return Scale(1.0, "model")
    factor, area, _ = estimate_factor(np.asarray(image), find_nuclei, reference_area_px)
    if factor is None:
        return Scale(1.0, "model")
    applied = 1.0 if DEAD_BAND[0] <= factor <= DEAD_BAND[1] else factor
    pixel = None if model_pixel_size_um is None else model_pixel_size_um * factor
    return Scale(applied, "estimated", pixel, factor, area)


def _given(factor: float, pixel_size_um: float) -> Scale:
    applied = 1.0 if abs(factor - 1.0) <= GIVEN_TOLERANCE else factor
    return Scale(applied, "given", pixel_size_um)


def describe_scale(scale: Scale) -> str:
    """One line for people: what pixel size the image was taken at and whether it was resampled."""
    pixel = f"{scale.pixel_size_um:.3g} µm/px" if scale.pixel_size_um else "pixel size unknown"
    what = {"given": "given", "estimated": "estimated from its nuclei", "model": "not known", "off": "not estimated"}
    resampled = f"resampled ×{scale.factor:.2f}" if scale.resamples else "run as it is"
    estimate = f" (estimate ×{scale.estimated_factor:.2f})" if scale.estimated_factor else ""
    return f"scale: {pixel}, {what.get(scale.source, scale.source)}; {resampled}{estimate}"


def for_model(image_scale: Scale, model_pixel_size_um: float | None) -> Scale:
    """The :class:`Scale` for another model (trained at ``model_pixel_size_um``) of an image whose pixel
    size ``image_scale`` gives or estimated (e.g. the semantic model's estimate feeding the instance model)."""
    pixel = image_scale.pixel_size_um
    if pixel is None or model_pixel_size_um is None:
        return Scale(1.0, image_scale.source if image_scale.source == "off" else "model", pixel)
    factor = pixel / model_pixel_size_um
    if image_scale.source != "estimated":
        return _given(factor, pixel)
    applied = 1.0 if DEAD_BAND[0] <= factor <= DEAD_BAND[1] else factor
    return Scale(applied, "estimated", pixel, factor, image_scale.nucleus_area_px)


__all__ = [
    "DEAD_BAND",
    "REFERENCE_NUCLEUS_AREA_UM2",
    "Scale",
    "describe_scale",
    "estimate_factor",
    "for_model",
    "median_nucleus_area",
    "plan_scale",
    "probe_window",
    "resample",
    "resize_labels",
    "resize_probabilities",
]
