"""Procedural synthetic Pap smears with exact ground truth (no real data needed).

:func:`generate_smear` imitates the ISBI 2014 synthetic overlapping-cell images: light, slightly
speckled background (~235 of 255), translucent cytoplasm (~180-200) that gets darker where cells
overlap, small dark textured nuclei (~90-110), mild blur and noise. Intensities follow the
Beer-Lambert law, so overlapping stains multiply their transmissions exactly like real absorbing
material. :func:`generate_cell_field` makes a large, fully vectorized field of many small
non-overlapping cells for benchmarking per-cell measurements.

Both are deterministic for a given seed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .cellset import CellSet, Masks
from .io.sample import CellSample

#: µm per pixel of the generated smears: they imitate the ISBI images, whose pixel size is estimated at
#: 0.32 µm from their normal nuclei (scripts/record_pixel_sizes.py); the shipped gray model's size
#: estimate on generated smears is 0.30–0.32 µm (napari_cervix.scale).
PIXEL_SIZE_UM = 0.32
#: Background transmission (≈ 235/255, as in ISBI 2014 synthetic frames).
_BACKGROUND = 0.922
#: Per-channel optical density multipliers (R, G, B) of the Papanicolaou stains; each averages
#: about 1 so a stain darkens an RGB image about as much as the gray one.
_PINK_CYTOPLASM = np.array([0.35, 1.60, 1.05], np.float32)  # eosinophilic (superficial) cells
_BLUE_CYTOPLASM = np.array([1.60, 0.75, 0.65], np.float32)  # cyanophilic (intermediate) cells
_HEMATOXYLIN = np.array([1.20, 1.25, 0.55], np.float32)  # blue-purple nuclei
_BACKGROUND_RGB = np.array([0.95, 0.925, 0.94], np.float32)

_MAX_PLACEMENT_TRIES = 300


def _range(value, name: str, *, integer: bool, minimum: float) -> tuple:
    """An int/float or an inclusive (low, high) pair, validated."""
    low, high = (value, value) if np.isscalar(value) else tuple(value)
    if integer and (int(low) != low or int(high) != high):
        raise ValueError(f"{name} must be whole numbers, got {value!r}")
    if not (minimum <= low <= high):
        raise ValueError(f"{name} must be a number or a (low, high) pair with {minimum} <= low <= high; got {value!r}")
    return low, high


def _check_shape(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 16:
        raise ValueError(f"shape must be (height, width), both at least 16 pixels; got {shape}")
    return shape


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance smooth noise with blobs about ``sigma`` px wide."""
    if sigma < 3:
        noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    else:
        # Cubic upsampling of coarse white noise: same look as a wide Gaussian filter at a
        # fraction of the cost (a sigma-40 filter alone would take most of a smear's budget).
        step = float(sigma)
        coarse_shape = tuple(math.ceil(s / step) + 4 for s in shape)
        coarse = rng.standard_normal(coarse_shape).astype(np.float32)
        coarse = ndimage.gaussian_filter(coarse, 0.8)  # rounder blobs than raw cubic interpolation
        noise = ndimage.zoom(coarse, step, order=3)[: shape[0], : shape[1]]
    noise = noise - noise.mean()
    return noise / max(float(noise.std()), 1e-6)


class _Blob:
    """A rotated ellipse whose radius is perturbed by a few low-frequency harmonics (a smooth,
    irregular closed outline, like a flattened squamous cell or a nucleus)."""

    def __init__(self, rng, a: float, b: float, amplitudes):
        self.a, self.b = float(a), float(b)
        self.angle = rng.uniform(0, np.pi)
        self.orders = np.arange(2, 2 + len(amplitudes))
        self.amplitudes = np.asarray(amplitudes, np.float64) * rng.uniform(0, 1, len(amplitudes))
        self.phases = rng.uniform(0, 2 * np.pi, len(amplitudes))

    @property
    def extent(self) -> float:
        """Upper bound of the distance from the center to the outline."""
        return self.a * (1 + self.amplitudes.sum())

    @property
    def inner_radius(self) -> float:
        """Lower bound of the distance from the center to the outline."""
        return self.b * (1 - self.amplitudes.sum())

    def rho(self, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
        """Distance from the center over the outline radius in that direction (≤ 1 inside)."""
        u = dx * np.cos(self.angle) + dy * np.sin(self.angle)
        v = -dx * np.sin(self.angle) + dy * np.cos(self.angle)
        theta = np.arctan2(v, u)
        radius = self.a * self.b / np.hypot(self.b * np.cos(theta), self.a * np.sin(theta))
        harmonics = zip(self.orders, self.amplitudes, self.phases)
        radius = radius * (1 + sum(amp * np.cos(k * theta + ph) for k, amp, ph in harmonics))
        return np.hypot(u, v) / radius


def _window(center, extent: float, shape):
    """Image slices of the square window around ``center`` (clipped) and its pixel grid offsets."""
    (cy, cx), r = center, int(math.ceil(extent)) + 1
    y0, y1 = max(0, int(cy) - r), min(shape[0], int(cy) + r + 2)
    x0, x1 = max(0, int(cx) - r), min(shape[1], int(cx) + r + 2)
    dy = (np.arange(y0, y1, dtype=np.float64) - cy)[:, None]
    dx = (np.arange(x0, x1, dtype=np.float64) - cx)[None, :]
    return (slice(y0, y1), slice(x0, x1)), dy, dx


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _place_cell(rng, shape, cell_radius, placed_centers, nuclei_union):
    """Draw one cell and its nucleus; retry until the nucleus lies inside the image and keeps a gap
    of 2 px to every other nucleus (so nuclei stay separate connected components)."""
    height, width = shape
    for _ in range(_MAX_PLACEMENT_TRIES):
        radius = rng.uniform(*cell_radius)
        cell = _Blob(rng, radius, radius * rng.uniform(0.65, 1.0), [0.08, 0.06, 0.05, 0.03, 0.02])
        if placed_centers and rng.random() < 0.6:
            # Clump next to an earlier cell: real smears (and ISBI frames) overlap heavily.
            anchor = placed_centers[rng.integers(len(placed_centers))]
            distance = rng.uniform(0.5, 1.2) * radius
            direction = rng.uniform(0, 2 * np.pi)
            center = (anchor[0] + distance * np.sin(direction), anchor[1] + distance * np.cos(direction))
        else:
            margin = min(0.3 * radius, 0.25 * min(shape))
            center = (rng.uniform(margin, height - margin), rng.uniform(margin, width - margin))

        nucleus_a = min(rng.uniform(7.5, 13.0), 0.35 * cell.inner_radius)
        nucleus = _Blob(rng, nucleus_a, nucleus_a * rng.uniform(0.7, 1.0), [0.06, 0.04])
        max_offset = max(0.0, cell.inner_radius - nucleus.extent - 3)
        offset, direction = rng.uniform(0, 0.8) * max_offset, rng.uniform(0, 2 * np.pi)
        nucleus_center = (center[0] + offset * np.sin(direction), center[1] + offset * np.cos(direction))
        reach = nucleus.extent + 1
        if not (reach <= nucleus_center[0] < height - reach and reach <= nucleus_center[1] < width - reach):
            continue
        window, dy, dx = _window(nucleus_center, nucleus.extent, shape)
        nucleus_mask = nucleus.rho(dy, dx) <= 1
        if not nucleus_mask.any():
            continue
        guard = ndimage.binary_dilation(nucleus_mask, structure=np.ones((3, 3), bool), iterations=2)
        if (guard & nuclei_union[window]).any():
            continue
        return cell, center, nucleus, nucleus_center
    raise ValueError(
        f"could not place a cell with radius {cell_radius} in a {height}×{width} image after "
        f"{_MAX_PLACEMENT_TRIES} tries; use a larger shape, smaller cell_radius or fewer cells"
    )


def generate_smear(shape=(512, 512), n_cells=(2, 10), seed=None, rgb: bool = False, cell_radius=(40, 90)) -> CellSample:
    """A synthetic smear of overlapping translucent cells, one nucleus each, with exact truth.

    ``n_cells`` and ``cell_radius`` (semi-major axis in px) are a number or an inclusive (low, high)
    range drawn per image / per cell. Returns a :class:`CellSample` with ``image`` uint8 H×W (gray)
    or H×W×3 (Pap-stain colors when ``rgb``), ``cells`` the :class:`~napari_cervix.cellset.CellSet` of the
    whole cells (they overlap; ids 1..N in drawing order) with each cell's own nucleus linked to it, and
    ``nuclei`` the H×W bool union. Every nucleus lies inside its cell and at least 2 px from every other
    nucleus.
    """
    shape = _check_shape(shape)
    n_low, n_high = _range(n_cells, "n_cells", integer=True, minimum=0)
    r_low, r_high = _range(cell_radius, "cell_radius", integer=False, minimum=4)
    rng = np.random.default_rng(seed)
    count = int(rng.integers(n_low, n_high + 1))

    cell_corners, cell_crops, nucleus_corners, nucleus_crops = [], [], [], []
    nuclei_union = np.zeros(shape, bool)
    # Optical density of each stain, summed over cells (Beer-Lambert: absorbances add up).
    od_pink, od_blue, od_nucleus = (np.zeros(shape, np.float32) for _ in range(3))
    centers = []
    for _ in range(count):
        cell, center, nucleus, nucleus_center = _place_cell(rng, shape, (r_low, r_high), centers, nuclei_union)
        centers.append(center)

        window, dy, dx = _window(center, cell.extent, shape)
        rho = cell.rho(dy, dx)
        inside = rho <= 1
        cell_window, cell_inside = window, inside
        cell_corners.append((window[0].start, window[1].start))
        cell_crops.append(inside)
        texture = 1 + 0.18 * _smooth_noise(rng, inside.shape, sigma=rng.uniform(4, 9))
        rim = 0.6 * _smoothstep(0.8, 1.0, rho)  # thicker, darker rim of a flattened cell
        density = rng.uniform(0.12, 0.30) * np.clip(texture + rim, 0.3, None) * inside
        stain = od_pink if rng.random() < 0.35 else od_blue
        stain[window] += density.astype(np.float32)

        window, dy, dx = _window(nucleus_center, nucleus.extent, shape)
        rho = nucleus.rho(dy, dx)
        inside = (rho <= 1) & _window_part(cell_inside, cell_window, window)
        nucleus_corners.append((window[0].start, window[1].start))
        nucleus_crops.append(inside)
        nuclei_union[window] |= inside
        chromatin = 1 + 0.2 * _smooth_noise(rng, inside.shape, sigma=1.2)
        density = rng.uniform(0.55, 0.9) * np.clip(chromatin, 0.3, None) * inside
        od_nucleus[window] += density.astype(np.float32)

    # Dust and debris: sparse dark specks all over the slide, like the ISBI frames.
    specks = np.zeros(shape, np.float32)
    n_specks = rng.poisson(0.004 * shape[0] * shape[1])
    speck_y, speck_x = rng.integers(0, shape[0], n_specks), rng.integers(0, shape[1], n_specks)
    specks[speck_y, speck_x] = rng.uniform(0.3, 1.2, n_specks)
    illumination = 1 + 0.01 * _smooth_noise(rng, shape, sigma=40)
    blur = rng.uniform(0.8, 1.3)

    if rgb:
        channels = []
        for c in range(3):
            od = od_pink * _PINK_CYTOPLASM[c] + od_blue * _BLUE_CYTOPLASM[c] + od_nucleus * _HEMATOXYLIN[c] + specks
            blurred = ndimage.gaussian_filter(od, blur)
            channels.append(_BACKGROUND_RGB[c] * illumination * np.exp(-blurred))
        transmission = np.stack(channels, axis=-1)
    else:
        od = od_pink + od_blue + od_nucleus + specks
        transmission = _BACKGROUND * illumination * np.exp(-ndimage.gaussian_filter(od, blur))
    noisy = 255 * transmission + rng.normal(0, 2.5, transmission.shape)
    image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)

    cells, kept = Masks.from_crops(shape, cell_corners, cell_crops)
    nuclei, kept_nuclei = Masks.from_crops(shape, nucleus_corners, nucleus_crops)
    return CellSample(
        image=image,
        cells=CellSet(cells, kept + 1, nuclei, kept_nuclei + 1),  # nucleus i belongs to cell i
        nuclei=nuclei_union,
        name=f"synthetic_smear_{seed}" if seed is not None else "synthetic_smear",
        source="napari_cervix.synth.generate_smear",
        meta={"seed": seed, "synthetic": True},
    )


def _window_part(mask: np.ndarray, window, target) -> np.ndarray:
    """The part of ``mask`` (covering image slices ``window``) inside image slices ``target``, shaped
    like ``target`` (False where ``mask`` does not reach)."""
    out = np.zeros((target[0].stop - target[0].start, target[1].stop - target[1].start), bool)
    y0, y1 = max(window[0].start, target[0].start), min(window[0].stop, target[0].stop)
    x0, x1 = max(window[1].start, target[1].start), min(window[1].stop, target[1].stop)
    if y1 > y0 and x1 > x0:
        out[y0 - target[0].start : y1 - target[0].start, x0 - target[1].start : x1 - target[1].start] = mask[
            y0 - window[0].start : y1 - window[0].start, x0 - window[1].start : x1 - window[1].start
        ]
    return out


def generate_smear_field(shape=(2048, 2048), tile: int = 512, n_cells=(7, 8), seed=None, rgb: bool = False):
    """A large overlapping-cell field made of independent :func:`generate_smear` tiles side by side
    (``n_cells`` per tile), for memory and speed benchmarks of whole fields: 2048² holds about 120 cells,
    3072² 280, 4096² 500. Cells never cross a tile border. Returns a :class:`CellSample` like
    :func:`generate_smear` (cell ids 1..N tile by tile)."""
    shape = _check_shape(shape)
    rng = np.random.default_rng(seed)
    image = np.zeros((*shape, 3) if rgb else shape, np.uint8)
    nuclei_union = np.zeros(shape, bool)
    cell_corners, cell_crops, nucleus_corners, nucleus_crops, owners = [], [], [], [], []
    for y in range(0, shape[0], tile):
        for x in range(0, shape[1], tile):
            h, w = min(tile, shape[0] - y), min(tile, shape[1] - x)
            part = generate_smear((h, w), n_cells, seed=int(rng.integers(2**31)), rgb=rgb)
            image[y : y + h, x : x + w] = part.image
            nuclei_union[y : y + h, x : x + w] = part.nuclei
            first = len(cell_crops)
            cell_corners += [(y + b[0], x + b[1]) for b in part.cells.boxes]
            cell_crops += part.cells.cells.crops
            nucleus_corners += [(y + b[0], x + b[1]) for b in part.cells.nuclei.boxes]
            nucleus_crops += part.cells.nuclei.crops
            position = {int(cell_id): first + k for k, cell_id in enumerate(part.cells.ids)}
            owners += [position[int(c)] + 1 for c in part.cells.nucleus_cell_ids]
    cells, _ = Masks.from_crops(shape, cell_corners, cell_crops)
    nuclei, _ = Masks.from_crops(shape, nucleus_corners, nucleus_crops)
    return CellSample(
        image=image,
        cells=CellSet(cells, None, nuclei, owners),
        nuclei=nuclei_union,
        name=f"synthetic_field_{seed}" if seed is not None else "synthetic_field",
        source="napari_cervix.synth.generate_smear_field",
        meta={"seed": seed, "synthetic": True, "tile": tile},
    )


def generate_cell_field(shape=(4096, 4096), n_cells: int = 10_000, seed=None):
    """A large field of many small, non-overlapping cells, each with one nucleus.

    Cells sit on a jittered grid, one per grid slot, and each cell's outline provably stays inside
    its slot, so cells never overlap. Cells are drawn as stacks of small P×P patches, a few
    hundred cells per numpy operation (no Python loop over cells): 4096² with 10 000 cells takes
    about a second.
    Returns ``(image uint8 H×W, cell_labels int32 H×W, nucleus_labels int32 H×W)``; labels are
    1..n_cells in raster order of the slots, 0 = background, and a nucleus has its cell's label.
    """
    shape = _check_shape(shape)
    n_cells = int(n_cells)
    if n_cells < 0:
        raise ValueError(f"n_cells must be >= 0, got {n_cells}")
    height, width = shape
    rng = np.random.default_rng(seed)
    cell_labels = np.zeros(shape, np.int32)
    nucleus_labels = np.zeros(shape, np.int32)
    od = np.zeros(shape, np.float32)

    if n_cells:
        rows = math.ceil(math.sqrt(n_cells * height / width))
        cols = math.ceil(n_cells / rows)
        slot_h, slot_w = height / rows, width / cols
        slot = min(slot_h, slot_w)
        if slot < 8:
            raise ValueError(
                f"{n_cells} cells do not fit in {height}×{width} pixels (each would get "
                f"{slot:.1f} px; at least 8 are needed)"
            )
        slots = np.sort(rng.choice(rows * cols, n_cells, replace=False))
        n = n_cells
        a = rng.uniform(0.25, 0.38, n) * slot
        b = a * rng.uniform(0.65, 1.0, n)
        amp2, amp3 = rng.uniform(0, 0.06, n), rng.uniform(0, 0.05, n)
        phase2, phase3 = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
        angle = rng.uniform(0, np.pi, n)
        # The outline radius is at most a·(1 + amp2 + amp3); keep that disc 1 px inside the slot.
        extent = a * (1 + amp2 + amp3)
        slack_y = np.maximum(0, slot_h / 2 - extent - 1)
        slack_x = np.maximum(0, slot_w / 2 - extent - 1)
        cy = (slots // cols + 0.5) * slot_h + slack_y * rng.uniform(-1, 1, n)
        cx = (slots % cols + 0.5) * slot_w + slack_x * rng.uniform(-1, 1, n)
        inner = b * (1 - amp2 - amp3)
        nucleus_a = rng.uniform(0.28, 0.4, n) * inner
        nucleus_b = nucleus_a * rng.uniform(0.7, 1.0, n)
        offset = rng.uniform(0, 0.5, n) * np.maximum(0, inner - nucleus_a - 1)
        direction = rng.uniform(0, 2 * np.pi, n)
        nucleus_angle = rng.uniform(0, np.pi, n)
        cell_od = rng.uniform(0.12, 0.35, n).astype(np.float32)
        nucleus_od = rng.uniform(0.5, 0.9, n).astype(np.float32)

        # One P×P patch per cell, its top-left corner at the pixel just above-left of the cell;
        # cells go in batches so the patch temporaries stay cache-sized.
        size = int(math.ceil(2 * extent.max())) + 3
        top = np.floor(cy - extent).astype(np.int64) - 1
        left = np.floor(cx - extent).astype(np.int64) - 1
        grid = np.arange(size, dtype=np.float32)
        batch = max(1, (1 << 18) // (size * size))
        for first in range(0, n, batch):
            cells = slice(first, min(n, first + batch))

            def c_(per_cell, cells=cells):
                """This batch's per-cell values, shaped to broadcast over its patches."""
                return np.asarray(per_cell[cells], np.float32)[:, None, None]

            dy = c_(top - cy) + grid[None, :, None]
            dx = c_(left - cx) + grid[None, None, :]
            cos_t, sin_t = c_(np.cos(angle)), c_(np.sin(angle))
            u, v = dx * cos_t + dy * sin_t, dy * cos_t - dx * sin_t
            r = np.sqrt(u * u + v * v) + np.float32(1e-6)
            c, s = u / r, v / r
            # cos(kθ + φ) from cos θ and sin θ by the multiple-angle identities (no arctan2).
            cos2, sin2 = c * c - s * s, 2 * s * c
            cos3, sin3 = c * (4 * c * c - 3), s * (3 - 4 * s * s)
            wobble = (
                1
                + c_(amp2) * (cos2 * c_(np.cos(phase2)) - sin2 * c_(np.sin(phase2)))
                + c_(amp3) * (cos3 * c_(np.cos(phase3)) - sin3 * c_(np.sin(phase3)))
            )
            in_cell = (u / c_(a)) ** 2 + (v / c_(b)) ** 2 <= wobble * wobble
            dy -= c_(offset * np.sin(direction))
            dx -= c_(offset * np.cos(direction))
            ncos, nsin = c_(np.cos(nucleus_angle)), c_(np.sin(nucleus_angle))
            u, v = dx * ncos + dy * nsin, dy * ncos - dx * nsin
            in_nucleus = ((u / c_(nucleus_a)) ** 2 + (v / c_(nucleus_b)) ** 2 <= 1) & in_cell

            index, py, px = np.nonzero(in_cell)
            index += first
            ys, xs = top[index] + py, left[index] + px
            cell_labels[ys, xs] = index + 1
            od[ys, xs] = cell_od[index]
            index, py, px = np.nonzero(in_nucleus)
            index += first
            ys, xs = top[index] + py, left[index] + px
            nucleus_labels[ys, xs] = index + 1
            od[ys, xs] += nucleus_od[index]

    od = ndimage.gaussian_filter(od, 1.0, output=np.float32)
    image = np.float32(_BACKGROUND * 255) * np.exp(-od)
    image += rng.standard_normal(shape, dtype=np.float32) * np.float32(2.5)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), cell_labels, nucleus_labels
