"""Training pairs for the semantic models: normalized image + partial-label target, with augmentation.

Ground truth from the real sets: nucleus where any nucleus; cytoplasm where any cell and no nucleus.
Samples whose reader marks them ``partial_annotation`` (ISBI 2015 frames: some cells; EDF nucleus GT:
no cells) give ``NOT_NUCLEUS`` outside what is known; point-annotated fields (CRIC) bring their own
target (pseudo-nuclei, known-not-nucleus, ``IGNORE`` elsewhere), see :mod:`.losses` and
:mod:`napari_cervix.pseudo_labels`.

A training set is gray (1 channel) when every image is gray, else RGB (3 channels; gray frames are
replicated into the three). Images are normalized once, per image, as inference does — gray by
:class:`~napari_cervix.imaging.PercentileNormalizer`, RGB by :class:`ChannelPercentileNormalizer` —
and crops are H×W×C float32 in [0, 1.5]; colour augmentation (HED stain jitter, hue/saturation) touches
only crops that are really in colour.
"""

from __future__ import annotations

import numpy as np

from ..geometry import CYTOPLASM, NUCLEUS
from ..io.sample import CellSample
from .losses import NOT_NUCLEUS

#: Percentiles mapped to 0 and 1 by the normalizers (the same as the gray models').
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.5


def training_target(sample: CellSample, cells_complete: bool) -> np.ndarray:
    if "semantic_target" in sample.meta:  # point-annotated fields: pseudo-labels with unknown regions
        return sample.meta["semantic_target"]
    if cells_complete:
        return sample.semantic_target()
    target = np.full(sample.shape, NOT_NUCLEUS, np.uint8)
    if sample.cells is not None and len(sample.cells):
        target[sample.cells.union()] = CYTOPLASM
    if sample.nuclei is not None:
        target[sample.nuclei.astype(bool)] = NUCLEUS
    return target


def load_training_samples(specs: list[str]) -> list[tuple[CellSample, bool]]:
    """(sample, cells_complete) for each dataset spec; a frame present in several sets is kept once,
    from the set that annotates it most (ISBI 2015 cells over EDF nuclei-only)."""
    from ..io import load_dataset

    chosen: dict[str, tuple[CellSample, bool, int]] = {}
    for spec in specs:
        for sample in load_dataset(spec):
            complete = not sample.partial_annotation
            richness = (sample.cells is not None) + (sample.nuclei is not None) + complete
            key = sample.name
            if key not in chosen or richness > chosen[key][2]:
                chosen[key] = (sample, complete, richness)
    return [(s, c) for s, c, _ in chosen.values()]


def input_channels(images) -> int:
    """3 when any image is RGB (H×W×3), else 1."""
    return 3 if any(np.ndim(image) == 3 for image in images) else 1


class ChannelPercentileNormalizer:
    """RGB counterpart of :class:`~napari_cervix.imaging.PercentileNormalizer`: each channel's
    ``low``/``high`` percentiles (from a strided subsample of the whole image) map to 0/1, clipped to
    [0, 1.5]. Per channel, so the glass of any lab's field becomes white and a gray image (replicated
    into three channels) is mapped exactly as the gray normalizer maps it."""

    def __init__(self, image, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE, max_samples: int = 1 << 20):
        step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / max_samples)))
        sample = self._rgb(np.asarray(image[::step, ::step])).reshape(-1, 3)
        if not np.all(np.isfinite(sample)):
            from ..imaging import ImageError

            raise ImageError("image has NaN or infinite pixels; fill or mask them first")
        self.lo, self.hi = np.percentile(sample, [low, high], axis=0).astype(np.float32)

    @staticmethod
    def _rgb(tile) -> np.ndarray:
        tile = np.asarray(tile, np.float32)
        return np.repeat(tile[..., None], 3, axis=-1) if tile.ndim == 2 else tile[..., :3]

    def __call__(self, tile) -> np.ndarray:
        """H×W×3 float32 in [0, 1.5]; a constant channel maps to zeros."""
        span = self.hi - self.lo
        flat = span <= 1e-6 * np.maximum(np.abs(self.hi), 1.0)
        out = (self._rgb(tile) - self.lo) / np.where(flat, 1.0, span)
        out[..., flat] = 0.0
        return np.clip(out, 0.0, 1.5)


def normalize_image(image, channels: int) -> np.ndarray:
    """H×W×``channels`` float32 network input of one whole image, normalized per image."""
    if channels == 3:
        return ChannelPercentileNormalizer(image)(image)
    from ..imaging import PercentileNormalizer

    return PercentileNormalizer(image)(image)[..., None]


def normalization_record(channels: int) -> dict:
    """How :func:`normalize_image` maps images, for the model card: luminance percentiles (gray models,
    unchanged from before colour training) or per-channel percentiles (RGB models)."""
    if channels == 3:
        return {"kind": "channel-percentile", "low": LOW_PERCENTILE, "high": HIGH_PERCENTILE}
    return {"kind": "percentile", "low": LOW_PERCENTILE, "high": HIGH_PERCENTILE, "gray": True}


def hed_jitter(alpha: float = 0.25, beta: float = 0.05, p: float = 0.8):
    """An albumentations transform applying HED stain jitter to float RGB images in [0, 1.5]."""
    import albumentations as A

    class _HEDJitter(A.ImageOnlyTransform):
        def __init__(self):
            super().__init__(p=p)

        def get_params_dependent_on_data(self, params, data):
            rng = self.random_generator
            return {"scale": rng.uniform(1 - alpha, 1 + alpha, 3), "shift": rng.uniform(-beta, beta, 3)}

        def apply(self, img, scale=None, shift=None, **params):
            return jitter_stains(img, scale, shift)

        def get_transform_init_args_names(self):
            return ()

    return _HEDJitter()


def jitter_stains(image: np.ndarray, scale, shift) -> np.ndarray:
    """``image`` (H×W×3 float, white ≈ 1) with its hematoxylin, eosin and DAB optical densities scaled
    by ``scale`` and shifted by ``shift`` (3 values each). Deconvolution with scikit-image's H-E-DAB
    matrices, without its clipping of negative densities, so scale 1 and shift 0 give the image back."""
    from skimage.color import hed_from_rgb, rgb_from_hed

    density = -np.log(np.clip(image, 1e-6, 1.0)) @ hed_from_rgb
    density = density * np.asarray(scale, np.float32) + np.asarray(shift, np.float32)
    out = np.exp(-(density @ rgb_from_hed)).astype(np.float32)
    # Keep what lies above white (normalized glass can exceed 1) as it was.
    return np.where(image > 1.0, image, out)


def augmentation(crop: int, channels: int = 1):
    """Scale, flips, 90° rotations, brightness/contrast/gamma, blur, noise (albumentations); for RGB
    crops also HED stain jitter and hue/saturation shifts (skipped for gray frames in an RGB set)."""
    import albumentations as A
    import cv2

    geometry_and_intensity = [
        # Scale first, on the whole image, so a crop of a shrunk field still shows a full crop of content.
        A.RandomScale(scale_limit=(-0.45, 0.8), interpolation=cv2.INTER_LINEAR, p=0.7),
        A.PadIfNeeded(crop, crop, border_mode=cv2.BORDER_REFLECT_101),
        A.RandomCrop(crop, crop),
        A.HorizontalFlip(),
        A.VerticalFlip(),
        A.RandomRotate90(),
        A.Affine(rotate=(-30, 30), border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.3, p=0.7),
        A.RandomGamma(gamma_limit=(70, 150), p=0.5),
        A.GaussianBlur(blur_limit=(3, 5), p=0.2),
        A.GaussNoise(std_range=(0.01, 0.06), p=0.3),
    ]
    geometry = A.Compose(geometry_and_intensity)
    if channels == 1:
        return geometry, None
    color = A.Compose(
        [
            hed_jitter(),
            A.HueSaturationValue(hue_shift_limit=12, sat_shift_limit=25, val_shift_limit=0, p=0.7),
        ]
    )
    return geometry, color


def focus_points(sample: CellSample) -> np.ndarray:
    """K × 3 (row, col, class rank) of a sample's annotated abnormal cells: CRIC's non-NILM points, ranked
    as in :data:`~napari_cervix.io.cric.CRIC_CLASSES`; none for other data sets."""
    from ..io.cric import CRIC_CLASSES, short_bethesda

    points = np.asarray(sample.meta.get("points", np.zeros((0, 2))), np.float32).reshape(-1, 2)
    ranks = np.array([CRIC_CLASSES.index(short_bethesda(c)) for c in sample.meta.get("bethesda", [])], np.float32)
    keep = ranks > 0 if len(ranks) == len(points) else np.zeros(len(points), bool)
    return np.concatenate([points[keep], ranks[keep, None]], axis=1) if keep.any() else np.zeros((0, 3), np.float32)


class CropDataset:
    """Random augmented crops; an epoch is ``length`` crops drawn with replacement, weighted per image.

    ``pairs``: (normalized H×W×C image, target) — see :func:`normalize_image`. Yields (C×crop×crop
    float32, crop×crop int64). ``focus``: per pair, its :func:`focus_points`; a share ``focus_share`` of
    the crops is then cut around one of them (its class drawn first, each class equally, so the 40 SCC
    cells are seen as often as the 230 ASC-US ones): abnormal nuclei are rare in the fields, and the
    ones the models miss are large, pale or keratinized — seen too seldom by area-weighted crops.
    """

    def __init__(self, pairs, crop: int, length: int, weights=None, seed: int = 0, focus=None, focus_share=0.0):
        self.pairs, self.crop, self.length = pairs, crop, length
        self.weights = None if weights is None else np.asarray(weights, float) / np.sum(weights)
        self.seed = seed
        focus = [np.zeros((0, 3), np.float32) if f is None else f for f in (focus or [None] * len(pairs))]
        self.focus = np.concatenate([np.c_[np.full(len(f), k), f] for k, f in enumerate(focus)] or [np.zeros((0, 4))])
        self.focus_share = float(focus_share) if len(self.focus) else 0.0
        channels = pairs[0][0].shape[-1] if pairs else 1
        self.geometry, self.color = augmentation(crop, channels)
        # Gray frames replicated into an RGB set stay gray: no stain or hue jitter for them.
        self.colored = [channels == 3 and not np.array_equal(image[..., 0], image[..., 1]) for image, _ in pairs]

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        rng = np.random.default_rng((self.seed, index))
        if self.focus_share and rng.random() < self.focus_share:
            which, image, target = self._around_focus(rng)
        else:
            which = rng.choice(len(self.pairs), p=self.weights)
            image, target = self.pairs[which]
        # Seed the augmentation per crop: reproducible, and forked loader workers don't repeat each other.
        self.geometry.set_random_seed(int(rng.integers(2**31)))
        out = self.geometry(image=image, mask=target)
        image = out["image"]
        if self.colored[which]:
            self.color.set_random_seed(int(rng.integers(2**31)))
            image = self.color(image=image)["image"]
        if image.ndim == 2:  # albumentations drops a trailing channel axis of 1 in some transforms
            image = image[..., None]
        return np.ascontiguousarray(image.transpose(2, 0, 1), np.float32), out["mask"].astype(np.int64)

    def _around_focus(self, rng):
        """(pair index, image window, target window) around a focus point drawn class first: a window
        1.25 crops wide, so the random crop after scaling still holds the cell in most draws."""
        classes = np.unique(self.focus[:, 3])
        candidates = np.flatnonzero(self.focus[:, 3] == rng.choice(classes))
        which, row, col, _ = self.focus[rng.choice(candidates)]
        image, target = self.pairs[int(which)]
        half = int(self.crop * 1.25) // 2
        r0, c0 = max(0, int(row) - half), max(0, int(col) - half)
        window = (slice(r0, int(row) + half), slice(c0, int(col) + half))
        return int(which), image[window], target[window]


def sampling_weights(entries, partial_weight: float = 1.0) -> np.ndarray:
    """Per training entry, the share of crops drawn from it: each dataset gets a share proportional to
    the square root of its total area (CRIC's ~120 large fields would otherwise crowd out the small ISBI
    sets that the ISBI figures are measured on), split among its images by area; partially annotated
    images are further weighted by ``partial_weight``."""
    areas = np.array([e["image"].shape[0] * e["image"].shape[1] for e in entries], float)
    datasets = [e.get("dataset", "") for e in entries]
    totals = {d: areas[[x == d for x in datasets]].sum() for d in set(datasets)}
    weights = np.array([area / np.sqrt(totals[d]) for area, d in zip(areas, datasets)])
    weights *= [1.0 if e["complete"] else partial_weight for e in entries]
    return weights / weights.sum()


def split_training_samples(samples, val_fraction: float, seed: int) -> tuple[list, list]:
    """(train, val) CellSamples from (sample, cells_complete) pairs, by :func:`~napari_cervix.io.split_samples`
    within groups: synthetic (complete), real gray, and real RGB fields per ``meta["stratum"]`` (CRIC: the
    field's most severe Bethesda class), so each kind — and each class of the rare abnormal fields — is
    validated. A stratum's validation share is topped up to ``val_fraction`` of its fields (the next
    lowest name hashes): the few SCC fields would otherwise give one field. Sides depend only on the names
    in a group, so a field is never split and the gray sets keep the split they had before RGB data joined.
    """
    from ..io import split_samples

    def group(sample, complete):
        return complete, np.ndim(sample.image) == 3, str(sample.meta.get("stratum", ""))

    train, val = [], []
    for key in sorted({group(s, c) for s, c in samples}):
        members = [s for s, c in samples if group(s, c) == key]
        fraction, wanted = val_fraction, round(val_fraction * len(members)) if key[2] else 0
        group_train, group_val = split_samples(members, fraction, seed)
        while len(group_val) < wanted:
            fraction = min(fraction + 0.02, 0.99)
            group_train, group_val = split_samples(members, fraction, seed)
        train += group_train
        val += group_val
    return train, val


def build_training_set(specs: list[str], val_fraction: float, seed: int) -> dict:
    """Raw images + targets + split for the given dataset specs, or a file made by :func:`pack_training_set`
    (spec ``pack:FILE.npz``, so training can run where the readers' data is not, e.g. a GPU machine).

    ``in_channels`` of the result: 3 when any image is RGB, else 1 (see :func:`input_channels`).
    """
    if len(specs) == 1 and specs[0].startswith("pack:"):
        return unpack_training_set(specs[0][5:])
    samples = load_training_samples(specs)
    if not samples:
        raise ValueError(f"no training images found in {specs}")
    complete = {s.name: c for s, c in samples}
    train, val = split_training_samples(samples, val_fraction, seed)
    entries = [
        {
            "name": s.name,
            "complete": complete[s.name],
            "split": split,
            "dataset": s.meta.get("dataset", ""),
            "image": s.image,
            "target": training_target(s, complete[s.name]),
            "focus": focus_points(s),
        }
        for split, group in (("train", train), ("val", val))
        for s in group
    ]
    return {"specs": list(specs), "in_channels": input_channels(s.image for s, _ in samples), "entries": entries}


def pack_training_set(specs: list[str], path, val_fraction: float = 0.2, seed: int = 0) -> None:
    import json

    data = build_training_set(specs, val_fraction, seed)
    arrays = {}
    for i, entry in enumerate(data["entries"]):
        arrays[f"image_{i}"] = entry["image"]
        arrays[f"target_{i}"] = entry["target"]
        arrays[f"focus_{i}"] = entry["focus"]
    index = [{k: e[k] for k in ("name", "complete", "split", "dataset")} for e in data["entries"]]
    arrays["index"] = np.frombuffer(json.dumps({"specs": data["specs"], "entries": index}).encode(), np.uint8)
    np.savez_compressed(path, **arrays)


def unpack_training_set(path) -> dict:
    import json

    with np.load(path) as npz:
        index = json.loads(npz["index"].tobytes().decode())
        entries = [
            dict(
                e,
                image=npz[f"image_{i}"],
                target=npz[f"target_{i}"],
                focus=npz[f"focus_{i}"] if f"focus_{i}" in npz.files else np.zeros((0, 3), np.float32),
            )
            for i, e in enumerate(index["entries"])
        ]
    return {"specs": index["specs"], "in_channels": input_channels(e["image"] for e in entries), "entries": entries}
