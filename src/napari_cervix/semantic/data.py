"""Training pairs for the semantic models: normalized gray image + partial-label target, with augmentation.

Ground truth from the real sets: nucleus where any nucleus; cytoplasm where any cell and no nucleus.
Sets whose cells are not all annotated (ISBI 2015 frames) or not at all (EDF nucleus GT) give
``NOT_NUCLEUS`` outside what is known, see :mod:`.losses`.
"""

from __future__ import annotations

import numpy as np

from ..io.sample import CellSample
from .losses import NOT_NUCLEUS

#: Dataset kinds whose cell annotation is incomplete: only nuclei (and annotated cells) are certain.
PARTIAL_KINDS = ("isbi2015", "edf-nuclei")


def training_target(sample: CellSample, cells_complete: bool) -> np.ndarray:
    if cells_complete:
        return sample.semantic_target()
    target = np.full(sample.shape, NOT_NUCLEUS, np.uint8)
    if sample.cells is not None and len(sample.cells):
        target[np.any(sample.cells, axis=0)] = 1
    if sample.nuclei is not None:
        target[sample.nuclei.astype(bool)] = 2
    return target


def load_training_samples(specs: list[str]) -> list[tuple[CellSample, bool]]:
    """(sample, cells_complete) for each dataset spec; a frame present in several sets is kept once,
    from the set that annotates it most (ISBI 2015 cells over EDF nuclei-only)."""
    from ..io import load_dataset, parse_spec

    chosen: dict[str, tuple[CellSample, bool, int]] = {}
    for spec in specs:
        kind = parse_spec(spec)[0]
        complete = kind not in PARTIAL_KINDS
        for sample in load_dataset(spec):
            richness = (sample.cells is not None) + (sample.nuclei is not None) + complete
            key = sample.name
            if key not in chosen or richness > chosen[key][2]:
                chosen[key] = (sample, complete, richness)
    return [(s, c) for s, c, _ in chosen.values()]


def augmentation(crop: int):
    """Flips, 90° rotations, scale, brightness/contrast/gamma, blur, noise (albumentations)."""
    import albumentations as A
    import cv2

    return A.Compose(
        [
            A.PadIfNeeded(crop, crop, border_mode=cv2.BORDER_REFLECT_101),
            A.RandomCrop(crop, crop),
            A.HorizontalFlip(),
            A.VerticalFlip(),
            A.RandomRotate90(),
            A.Affine(scale=(0.7, 1.4), rotate=(-30, 30), border_mode=cv2.BORDER_REFLECT_101, p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.3, p=0.7),
            A.RandomGamma(gamma_limit=(70, 150), p=0.5),
            A.GaussianBlur(blur_limit=(3, 5), p=0.2),
            A.GaussNoise(std_range=(0.01, 0.06), p=0.3),
        ]
    )


class CropDataset:
    """Random augmented crops; an epoch is ``length`` crops drawn with replacement, weighted per image."""

    def __init__(self, pairs, crop: int, length: int, weights=None, seed: int = 0):
        self.pairs, self.crop, self.length = pairs, crop, length
        self.weights = None if weights is None else np.asarray(weights, float) / np.sum(weights)
        self.seed = seed
        self.transform = augmentation(crop)

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        rng = np.random.default_rng((self.seed, index))
        image, target = self.pairs[rng.choice(len(self.pairs), p=self.weights)]
        # Seed the augmentation per crop: reproducible, and forked loader workers don't repeat each other.
        self.transform.set_random_seed(int(rng.integers(2**31)))
        out = self.transform(image=image, mask=target)
        return out["image"][None].astype(np.float32), out["mask"].astype(np.int64)


def build_training_set(specs: list[str], val_fraction: float, seed: int) -> dict:
    """Raw images + targets + split for the given dataset specs, or a file made by :func:`pack_training_set`
    (spec ``pack:FILE.npz``, so training can run where the readers' data is not, e.g. a GPU machine)."""
    if len(specs) == 1 and specs[0].startswith("pack:"):
        return unpack_training_set(specs[0][5:])
    from ..io import split_samples

    samples = load_training_samples(specs)
    if not samples:
        raise ValueError(f"no training images found in {specs}")
    complete = {s.name: c for s, c in samples}
    # Split synthetic (complete) and real (partial) frames separately so both kinds are validated.
    train, val = [], []
    for kind in (True, False):
        group_train, group_val = split_samples([s for s, c in samples if c == kind], val_fraction, seed)
        train += group_train
        val += group_val
    entries = [
        {
            "name": s.name,
            "complete": complete[s.name],
            "split": split,
            "image": s.image,
            "target": training_target(s, complete[s.name]),
        }
        for split, group in (("train", train), ("val", val))
        for s in group
    ]
    return {"specs": list(specs), "entries": entries}


def pack_training_set(specs: list[str], path, val_fraction: float = 0.2, seed: int = 0) -> None:
    import json

    data = build_training_set(specs, val_fraction, seed)
    arrays = {}
    for i, entry in enumerate(data["entries"]):
        arrays[f"image_{i}"] = entry["image"]
        arrays[f"target_{i}"] = entry["target"]
    index = [{k: e[k] for k in ("name", "complete", "split")} for e in data["entries"]]
    arrays["index"] = np.frombuffer(json.dumps({"specs": data["specs"], "entries": index}).encode(), np.uint8)
    np.savez_compressed(path, **arrays)


def unpack_training_set(path) -> dict:
    import json

    with np.load(path) as npz:
        index = json.loads(npz["index"].tobytes().decode())
        entries = [dict(e, image=npz[f"image_{i}"], target=npz[f"target_{i}"]) for i, e in enumerate(index["entries"])]
    return {"specs": index["specs"], "entries": entries}
