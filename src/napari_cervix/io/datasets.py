"""Dataset specs (``KIND:PATH`` or a plain path) → samples, and the one train/validation split."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .coco import read_coco
from .cric import CELLS_CSV, read_cric
from .edf import GT_SUFFIX, read_edf_nuclei
from .folders import read_class_folders, read_mask_pairs
from .images import IMAGE_SUFFIXES, image_files
from .isbi import ISBI2014_MAT, ISBI2015_MAT, read_isbi2014, read_isbi2015
from .sample import CellSample

READERS = {
    "isbi2014": read_isbi2014,  # folder with isbi_train_GT.mat + images/, or the .mat
    "isbi2015": read_isbi2015,  # folder of EDF*.npz, or CytoGroundTruth.mat, or one .npz
    "coco": read_coco,  # COCO instances .json (or a folder holding coco.json)
    "edf-nuclei": read_edf_nuclei,  # folder of NAME.png + NAME_GT.png
    "herlev": read_class_folders,  # folder of CLASS/ sub-folders of images
    "pairs": read_mask_pairs,  # folder with images/ and masks/
    "cric": read_cric,  # folder with images/ and cells.csv (nucleus points + Bethesda class)
}

#: File-name prefixes of augmented copies; a copy must land in the same split as its original.
AUGMENTATION_PREFIXES = ("flipped_", "mirrored_", "rotated_")


def _folder_kinds(folder: Path) -> list[str]:
    """Layouts a folder matches, most specific first."""
    kinds = []
    if (folder / ISBI2014_MAT).is_file():
        kinds.append("isbi2014")
    if (folder / ISBI2015_MAT).is_file() or any(folder.glob("*.npz")):
        kinds.append("isbi2015")
    if any(p.stem.endswith(GT_SUFFIX) and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        kinds.append("edf-nuclei")
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        kinds.append("pairs")
    if (folder / "images").is_dir() and (folder / CELLS_CSV).is_file():
        kinds.append("cric")
    return kinds


def guess_kind(path) -> tuple[str, Path]:
    """(kind, path to read) for a plain path; ValueError when the layout is unknown or ambiguous.

    A folder's own ground-truth layout wins over a ``coco.json`` export of it beside it, and class
    folders are assumed only when no other layout matches (``images/`` looks like a class).
    """
    import h5py

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset path not found: {path}")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            return "coco", path
        if suffix == ".npz":
            return "isbi2015", path
        if suffix == ".mat":
            return ("isbi2015" if h5py.is_hdf5(path) else "isbi2014"), path
        raise ValueError(
            f"{path}: cannot tell the dataset kind of a '{suffix}' file; use KIND:PATH with "
            f"KIND one of {', '.join(READERS)}"
        )
    kinds = _folder_kinds(path)
    if len(kinds) > 1:
        raise ValueError(
            f"{path}: matches several dataset layouts ({', '.join(kinds)}); say which with e.g. '{kinds[0]}:{path}'"
        )
    if kinds:
        return kinds[0], path
    if (path / "coco.json").is_file():
        return "coco", path / "coco.json"
    if any(image_files(p) for p in path.iterdir() if p.is_dir()):
        return "herlev", path
    raise ValueError(f"{path}: no known dataset layout (kinds: {', '.join(READERS)}); see load_dataset")


def parse_spec(spec) -> tuple[str, Path]:
    """Split ``KIND:PATH``; a plain path gets its kind guessed."""
    text = str(spec)
    kind, sep, rest = text.partition(":")
    if sep and kind.lower() in READERS:
        kind, path = kind.lower(), Path(rest).expanduser()
        if kind == "coco" and path.is_dir() and (path / "coco.json").is_file():
            path = path / "coco.json"
        if not path.exists():
            raise FileNotFoundError(f"dataset path not found: {path} (from spec {text!r})")
        return kind, path
    # A lone letter before ':' is a Windows drive, not a kind.
    if sep and re.fullmatch(r"[A-Za-z][\w-]+", kind) and not Path(text).exists():
        raise ValueError(f"unknown dataset kind {kind!r} in {text!r}; known kinds: {', '.join(READERS)}")
    return guess_kind(text)


def load_dataset(spec) -> list[CellSample]:
    """Samples of a dataset spec: ``isbi2014:DIR``, ``isbi2015:DIR|FILE``, ``coco:FILE.json``,
    ``edf-nuclei:DIR``, ``herlev:DIR``, ``pairs:DIR``, ``cric:DIR``, or a plain path whose kind is unambiguous.

    Missing paths raise FileNotFoundError, bad or inconsistent files ValueError, naming the file.
    """
    kind, path = parse_spec(spec)
    samples = READERS[kind](path)
    for sample in samples:
        sample.meta.setdefault("spec", f"{kind}:{path}")
    return samples


def split_key(name: str) -> str:
    """The name an augmented copy shares with its original (``flipped_X`` → ``X``)."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in AUGMENTATION_PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix) :], True
    return name


def _unit_hash(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_samples(samples, val_fraction: float = 0.2, seed: int = 0):
    """Deterministic (train, val) lists: a sample is in val when a hash of its name is below
    ``val_fraction``.

    Each sample's side depends only on its own name (and ``seed``), so adding files never reshuffles
    the others, the same image in two datasets (EDF004 in edf-nuclei and isbi2015) lands on the same
    side, and augmented copies follow their original. When the hash would leave val empty although
    ``val_fraction`` > 0 and there are two or more distinct images, the image with the smallest
    hash is put in val.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction}")
    samples = list(samples)
    scores = [_unit_hash(split_key(s.name), seed) for s in samples]
    threshold = val_fraction
    if val_fraction > 0 and len(set(scores)) > 1 and min(scores) >= val_fraction:
        threshold = min(scores) + 1e-12
    train = [s for s, u in zip(samples, scores) if u >= threshold]
    val = [s for s, u in zip(samples, scores) if u < threshold]
    return train, val
