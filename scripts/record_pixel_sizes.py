"""Record in every shipped model's card the pixel size it was trained at and its nucleus-size reference.

    nice -n 10 .venv/bin/python scripts/record_pixel_sizes.py [--data ../shared/data] [--dry-run]

None of the data sets states its µm per pixel, so each one's is estimated from its normal nuclei: a
normal intermediate squamous nucleus is about 35 µm² (:data:`napari_cervix.scale.REFERENCE_NUCLEUS_AREA_UM2`),
so µm/px = sqrt(35 / median nucleus area in px²) — over CRIC's NILM cells (their point pseudo-masks,
:mod:`napari_cervix.pseudo_labels`), over the ISBI EDF frames' true nucleus masks (EDF004 onwards: filled),
and over the ISBI 2014 synthetic images' true nuclei. Models trained on the gray ISBI sets record the
geometric mean of those two (they saw both; each lies within 13 % of it); models trained on CRIC fields
record CRIC's. Each semantic model's ``nucleus_area_px`` is the median over its training images (every
6th CRIC training field of the semantic split for color models; the EDF frames and every 3rd synthetic
image for gray ones) of each image's median nucleus area as that model segments it: the size model's
reference (:mod:`napari_cervix.scale`). The instance model and the graders need only the pixel size (the
semantic default estimates an image's scale for them).

The weights' tensors are untouched; the header changes, so the registry's sha256 is updated.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from napari_cervix.scale import REFERENCE_NUCLEUS_AREA_UM2, median_nucleus_area

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "napari_cervix" / "weights"
GRAY_SEMANTIC = ("unet-mobilenet_v2", "residual-se-unet", "2se-unet")
RGB_SEMANTIC = ("unet-mobilenet_v2-rgb",)
GRAY_OTHERS = ("imbmdcr-lite",)
RGB_OTHERS = ("bethesda-boost-rgb",)


def pixel_size(area_px: float) -> float:
    return math.sqrt(REFERENCE_NUCLEUS_AREA_UM2 / area_px)


def component_areas(mask: np.ndarray) -> np.ndarray:
    from napari_cervix.geometry import label_components

    areas = np.bincount(label_components(mask).ravel())[1:]
    return areas[areas > 20]


def dataset_scales(data: Path) -> dict:
    """Median normal-nucleus area (px²) and the pixel size it gives, per data set."""
    import scipy.io
    from skimage.io import imread

    from napari_cervix.io.cric import read_cric, short_bethesda
    from napari_cervix.pseudo_labels import nuclear_stain, point_nuclei

    nilm = []
    for sample in read_cric(data / "cric_fields", pseudo_masks=False):
        normal = [i for i, c in enumerate(sample.meta["bethesda"]) if short_bethesda(c) == "NILM"]
        if normal:
            labels = point_nuclei(nuclear_stain(sample.image), sample.meta["points"][normal])
            nilm += np.bincount(labels.ravel(), minlength=len(normal) + 1)[1:].tolist()
    edf = []
    for path in sorted((data / "isbi2014_edf").glob("EDF*_GT.png")):
        if path.name >= "EDF004":  # EDF000-003 hold outlines, not filled masks
            edf += component_areas(imread(path) > 0).tolist()
    truth = scipy.io.loadmat(str(data / "isbi2014_synthetic" / "isbi_train_GT.mat"))["train_Nuclei"]
    synthetic = [a for i in range(truth.shape[0]) for a in component_areas(truth[i, 0] > 0).tolist()]
    found = {}
    for name, areas in (("cric", nilm), ("isbi_edf", edf), ("isbi2014_synthetic", synthetic)):
        median = float(np.median(areas))
        found[name] = {"nuclei": len(areas), "median_area_px": median, "pixel_size_um": round(pixel_size(median), 4)}
    found["isbi"] = {
        "pixel_size_um": round(
            math.sqrt(found["isbi_edf"]["pixel_size_um"] * found["isbi2014_synthetic"]["pixel_size_um"]), 4
        )
    }
    return found


def reference_area(model: str, images) -> float:
    from napari_cervix.geometry import NUCLEUS
    from napari_cervix.semantic.inference import load_semantic_model, segment_semantic

    loaded = load_semantic_model(model)
    medians = []
    for image in images:
        area, _ = median_nucleus_area(segment_semantic(image, loaded, estimate_scale=False) == NUCLEUS)
        if area is not None:
            medians.append(area)
    return round(float(np.median(medians)), 1)


def training_images(data: Path, color: str):
    from skimage.io import imread

    if color == "rgb":
        from napari_cervix.io.cric import read_cric
        from napari_cervix.semantic.data import split_training_samples

        samples = read_cric(data / "cric_fields", pseudo_masks=False)
        train, _ = split_training_samples([(s, False) for s in samples], 0.2, 0)
        return [(s[0] if isinstance(s, tuple) else s).image for s in train[::6]]
    edf = [imread(p) for p in sorted((data / "isbi2014_edf").glob("EDF*.png")) if "_GT" not in p.name]
    synthetic = [imread(data / "isbi2014_synthetic" / "images" / f"{i}.tif") for i in range(1, 46, 3)]
    return edf + synthetic


def rewrite(name: str, updates: dict, dry_run: bool) -> None:
    from napari_cervix.registry import load_state_dict, read_metadata, save_weights

    path = WEIGHTS / f"{name}.safetensors"
    metadata = read_metadata(path)
    metadata["input"] = {**(metadata.get("input") or {}), **updates}
    print(f"{name}: input {metadata['input']}")
    if dry_run:
        return
    sha = save_weights(load_state_dict(path), path, metadata)
    registry = json.loads((WEIGHTS / "registry.json").read_text())
    for record in registry["models"]:
        if record.get("file") == path.name:
            record["sha256"] = sha
    (WEIGHTS / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--dry-run", action="store_true", help="print what would be recorded, change nothing")
    args = parser.parse_args()
    data = Path(args.data)
    scales = dataset_scales(data)
    print(json.dumps(scales, indent=2))
    pixel = {"gray": scales["isbi"]["pixel_size_um"], "rgb": scales["cric"]["pixel_size_um"]}
    for color, names in (("gray", GRAY_SEMANTIC), ("rgb", RGB_SEMANTIC)):
        images = training_images(data, color)
        for name in names:
            area = reference_area(name, images)
            rewrite(name, {"pixel_size_um": pixel[color], "nucleus_area_px": area}, args.dry_run)
    for color, names in (("gray", GRAY_OTHERS), ("rgb", RGB_OTHERS)):
        for name in names:
            rewrite(name, {"pixel_size_um": pixel[color]}, args.dry_run)


if __name__ == "__main__":
    main()
