"""Nucleus pseudo-masks from point annotations (CRIC: one point per annotated nucleus, no masks).

Per point, rays are cast in :data:`RAYS` directions over a nuclear-stain image (:func:`nuclear_stain`:
darkness plus half the hematoxylin density from colour deconvolution, :func:`skimage.color.rgb2hed`; a
gray image's darkness alone). Along each ray the nucleus ends where the stain first falls
:data:`EDGE_FRACTION` of the way from the nucleus level (around the point) down to the palest value on
that ray within the largest nucleus radius; the edge radii are median-smoothed around the nucleus and
clipped to the size prior (radius 5–40 px on these fields). Per-ray levels, not one threshold per
window, keep a pale abnormal nucleus in a crowded clump from being lost to its dark neighbours, and the
first crossing stops a ray before it runs into a touching nucleus; pixels claimed by two points go to
the nearer. Measured against true masks by ``benchmarks/pseudo_masks.py`` (a marker watershed on the
stain gradient scored the same on isolated nuclei but lost most pale nuclei in crowded CRIC fields, and
hematoxylin alone scored below darkness on the Herlev nuclei).

:func:`point_training_target` turns the pseudo-masks into a three-valued target in the conventions of
:mod:`napari_cervix.semantic.losses`: ``NUCLEUS`` on pseudo-nuclei, ``NOT_NUCLEUS`` where the field is
known not to be nucleus (a ring around each pseudo-nucleus, and pale glass/cytoplasm far from anything as
dark as the field's nuclei), ``IGNORE`` elsewhere — an unannotated nucleus (leukocyte, unannotated
epithelial cell) must stay unknown, never background.

For the instance model, whose targets cannot be left unknown, :func:`complete_nuclei` adds a segmenter's
nuclei that no point claims (leukocytes are nuclei too), and :func:`nearest_nucleus_cells` gives each
nucleus its share of the cell foreground, a fallback cell for a point no detected cell covers.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .semantic.losses import IGNORE, NOT_NUCLEUS, NUCLEUS

#: Nucleus radius range on the CRIC fields (pixels of the 1280-wide frames): the size prior.
NUCLEUS_RADIUS = (5, 40)
#: Directions cast from each point.
RAYS = 48
#: Where along the drop from nucleus level to the ray's palest value the nucleus edge is put.
EDGE_FRACTION = 0.45
#: Smallest stain drop (stain units: about 0–1 from glass to the darkest nuclei) that counts as an edge.
MIN_CONTRAST = 0.05
#: Rays over which the edge radius is median-smoothed (odd).
SMOOTHING_RAYS = 9
#: Pixels between a pseudo-nucleus edge and the ring that is known not to be nucleus (edges are uncertain).
RING_GAP = 3
#: Width of that ring.
RING_WIDTH = 6
#: Distance from anything as dark as the field's palest annotated nucleus beyond which pale pixels are
#: trusted as background.
BACKGROUND_MARGIN = 8


def hematoxylin(image) -> np.ndarray:
    """H×W float32 hematoxylin density of an RGB image (colour deconvolution); for a gray image, its
    darkness (1 − intensity scaled to [0, 1]), which is what hematoxylin does to a gray frame."""
    image = np.asarray(image)
    if image.ndim == 2:
        from .imaging import to_unit_float

        return (1.0 - to_unit_float(image)).astype(np.float32)
    from skimage.color import rgb2hed

    return rgb2hed(image[..., :3])[..., 0].astype(np.float32)


def _unit_range(values: np.ndarray) -> np.ndarray:
    low, high = np.percentile(values, [1.0, 99.5])
    return (values - low) / max(float(high - low), 1e-6)


def nuclear_stain(image) -> np.ndarray:
    """H×W float32, higher = more likely nucleus: darkness + ½ hematoxylin, each scaled by its own
    1st–99.5th percentiles (RGB); a gray image's darkness."""
    image = np.asarray(image)
    if image.ndim == 2:
        return hematoxylin(image)
    from .imaging import to_unit_float

    darkness = 1.0 - to_unit_float(image[..., :3]).mean(axis=-1)
    return (_unit_range(darkness) + 0.5 * _unit_range(hematoxylin(image))).astype(np.float32)


def point_nuclei(stain: np.ndarray, points, radius: tuple[int, int] = NUCLEUS_RADIUS) -> np.ndarray:
    """H×W int32 labels: label i + 1 is the pseudo-nucleus of ``points[i]`` (row, col), a star-shaped
    region around the point (empty for a point outside the image).

    ``stain``: H×W, higher = more nuclear stain, about 0 on glass to 1 on the darkest nuclei, as
    :func:`nuclear_stain` gives.
    """
    from skimage.draw import polygon

    stain = ndi.gaussian_filter(np.asarray(stain, np.float32), 1.0)
    height, width = stain.shape
    r_min, r_max = radius
    angles = np.linspace(0, 2 * np.pi, RAYS, endpoint=False)
    steps = np.arange(r_max + 1, dtype=np.float32)
    dy, dx = np.sin(angles)[:, None] * steps, np.cos(angles)[:, None] * steps
    labels = np.zeros((height, width), np.int32)
    nearest = np.full((height, width), np.inf, np.float32)
    centre = np.argwhere(np.hypot(*np.mgrid[-3:4, -3:4]) <= 3) - 3
    pad = SMOOTHING_RAYS // 2
    for index, (py, px) in enumerate(np.asarray(points, float).reshape(-1, 2)):
        if not (0 <= py < height and 0 <= px < width):
            continue
        profile = ndi.map_coordinates(stain, [(py + dy).ravel(), (px + dx).ravel()], order=1, mode="nearest")
        profile = profile.reshape(dy.shape)
        rows = np.clip(int(round(py)) + centre[:, 0], 0, height - 1)
        cols = np.clip(int(round(px)) + centre[:, 1], 0, width - 1)
        level = float(np.median(stain[rows, cols]))
        drop = level - profile.min(axis=1)
        below = profile < (level - EDGE_FRACTION * drop)[:, None]
        below[:, :r_min] = False
        # A ray without a clear drop beyond the smallest radius says nothing: the smallest nucleus there.
        found = below.any(axis=1) & (drop >= MIN_CONTRAST)
        edge = np.where(found, below.argmax(axis=1), r_min).astype(np.float32)
        edge = ndi.median_filter(np.concatenate([edge[-pad:], edge, edge[:pad]]), SMOOTHING_RAYS)[pad:-pad]
        edge = np.clip(edge, r_min, r_max)
        rr, cc = polygon(py + np.sin(angles) * edge, px + np.cos(angles) * edge, (height, width))
        distance = np.hypot(rr - py, cc - px)
        closer = distance < nearest[rr, cc]
        labels[rr[closer], cc[closer]] = index + 1
        nearest[rr[closer], cc[closer]] = distance[closer]
    return labels


def point_training_target(image, points, radius: tuple[int, int] = NUCLEUS_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """(nucleus pseudo-mask H×W bool, target H×W uint8) for a field whose nuclei are marked by points.

    The target is ``NUCLEUS`` (2) on pseudo-nuclei, ``NOT_NUCLEUS`` on a ring around each (a gap of
    :data:`RING_GAP` pixels left unknown at the uncertain edge) and on pale pixels at least
    :data:`BACKGROUND_MARGIN` pixels from anything as dark as the field's palest pseudo-nucleus, and
    ``IGNORE`` everywhere else.
    """
    stain = nuclear_stain(image)
    labels = point_nuclei(stain, points, radius)
    nuclei = labels > 0
    smooth = ndi.gaussian_filter(stain, 1.0)
    if nuclei.any():
        # The palest annotated nucleus sets what "could be a nucleus" means in this field.
        dark_enough = float(np.percentile(smooth[nuclei], 5))
    else:
        from skimage.filters import threshold_otsu

        dark_enough = float(threshold_otsu(smooth))
    could_be_nucleus = smooth >= dark_enough
    target = np.full(stain.shape, IGNORE, np.uint8)
    target[ndi.distance_transform_edt(~(could_be_nucleus | nuclei)) > BACKGROUND_MARGIN] = NOT_NUCLEUS
    from_nucleus = ndi.distance_transform_edt(~nuclei)
    near = (from_nucleus > RING_GAP) & (from_nucleus <= RING_GAP + RING_WIDTH)
    # A ring pixel as dark as a nucleus may be an unannotated neighbour: leave it unknown.
    target[near & ~could_be_nucleus] = NOT_NUCLEUS
    target[nuclei] = NUCLEUS
    return nuclei, target


#: A segmented nucleus that the point pseudo-masks cover by this share or more is those points' nucleus.
CLAIMED_SHARE = 0.2


def complete_nuclei(point_labels: np.ndarray, segmented: np.ndarray) -> np.ndarray:
    """H×W int32 nucleus instances: the point pseudo-masks (``point_labels`` 1..P, kept as they are),
    then each 8-connected component of the ``segmented`` nucleus mask that they do not claim
    (:data:`CLAIMED_SHARE`); touching instances are kept apart by a one-pixel gap, so the instances
    survive as connected components (the form COCO nuclei take here)."""
    from .geometry import label_components

    labels = np.asarray(point_labels, np.int32).copy()
    segmented = np.asarray(segmented, bool)
    whole = label_components(segmented)
    if whole.max():
        claimed = np.asarray(ndi.mean(labels > 0, whole, index=np.arange(1, int(whole.max()) + 1)))
        new_label = np.zeros(len(claimed) + 1, np.int32)  # component → its label (0: claimed)
        unclaimed = np.flatnonzero(claimed < CLAIMED_SHARE) + 1
        new_label[unclaimed] = np.arange(1, len(unclaimed) + 1) + int(labels.max())
        free = (new_label[whole] > 0) & (labels == 0)
        labels[free] = new_label[whole[free]]
    grown = ndi.grey_dilation(labels, size=3)
    labels[(labels > 0) & (grown != labels)] = 0
    return labels


def nearest_nucleus_cells(foreground: np.ndarray, nuclei: np.ndarray, max_radius: float) -> np.ndarray:
    """H×W int32 cells: each foreground pixel (and every nucleus pixel) goes to the nearest nucleus of the
    ``nuclei`` label image, up to ``max_radius`` pixels from it; a cell takes its nucleus's label."""
    nuclei = np.asarray(nuclei)
    if not nuclei.any():
        return np.zeros(nuclei.shape, np.int32)
    distance, (rows, cols) = ndi.distance_transform_edt(nuclei == 0, return_indices=True)
    cells = nuclei[rows, cols].astype(np.int32)
    cells[~(np.asarray(foreground, bool) | (nuclei > 0)) | (distance > max_radius)] = 0
    return cells
