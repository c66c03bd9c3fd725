"""Fitting, calibration and the operating point of the Bethesda classifier, by field-grouped folds.

One recipe (the kind's, :data:`napari_cervix.kinds.bethesda.BethesdaBoost.recipe`) and one path serve the
cross-validation (``benchmarks/bethesda_cv.py``) and the shipped model (``scripts/train_bethesda.py``): each
field's detections are described once (:func:`field_descriptors`, the same crops, masks and descriptors
the kind computes at inference), then :func:`fit_grader` fits the trees on the training fields. The
calibration and the ``reviewable`` threshold of the shipped model are the ones fitted on the
cross-validation's out-of-fold predictions, so the card's operating point is one no model chose on its
own training cells.
"""

from __future__ import annotations

import numpy as np

from .cric_cells import FieldCells

ARCH = "bethesda_boost"


def recipe(arch: str = ARCH, **overrides):
    from ..cells.training import shipped_recipe

    return shipped_recipe(arch, channels=3, **overrides)


def field_descriptors(
    image, cell_labels: np.ndarray, nucleus_labels: np.ndarray, field: FieldCells, window: int, white_balance=False
):
    """Descriptors (detections × D) of one field's detections, as the grader sees them at inference
    (``white_balance``: the recipe's, see :func:`~.recolor.white_balance_gains`)."""
    from ..cells.descriptors import crop_descriptors, onehot_to_semantic
    from ..cellset import CellSet
    from .crops import nucleus_crops, window_masks
    from .recolor import white_balance_gains

    cells = CellSet.from_labels(cell_labels, nucleus_labels > 0)
    gains = white_balance_gains(image) if white_balance else None
    crops = nucleus_crops(image, field.centres, window, gains=gains)
    masks = window_masks(cells, field.labels, nucleus_labels, field.centres, window)
    return crop_descriptors(crops, onehot_to_semantic(masks))


def check_detector(cache) -> None:
    """Refuse a cache of detections made by another semantic model than today's default for color: its
    descriptors, windows and fold models would grade yesterday's detections. The first use stamps the
    cache (``cache/detector.json``: the model's name and sha256)."""
    import json
    from pathlib import Path

    from ..registry import default_model

    entry = default_model("semantic", "rgb")
    stamp, current = Path(cache) / "detector.json", {"model": entry.name, "sha256": entry.sha256}
    if stamp.exists():
        made_by = json.loads(stamp.read_text())
        if made_by != current:
            raise ValueError(
                f"{cache} holds detections of {made_by['model']} (sha256 {made_by['sha256'][:12]}…), but the default "
                f"semantic model for color is now {entry.name} (sha256 {entry.sha256[:12]}…): give another cache "
                "folder (--cache) or delete this one"
            )
    else:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(current, indent=1))


def describe_fields(samples, cache, window: int, white_balance: bool = False, log=print) -> tuple[list, list]:
    """Per CRIC sample: its detections matched to the points (:class:`FieldCells`) and their descriptors,
    cached per field in ``cache/descriptors`` (``cache/descriptors-wb`` white-balanced; the default
    semantic model's labels too, in ``cache/semantic``; :func:`check_detector` guards the cache), so the
    cross-validation and the shipped model describe the cells once."""
    from pathlib import Path

    from ..io._atomic import atomic_path
    from ..semantic.inference import load_semantic_model, segment_semantic
    from ..semantic.postprocess import cells_from_semantic
    from .cric_cells import field_cells

    cache = Path(cache)
    check_detector(cache)

    model, fields, descriptors = None, [], []
    for n, sample in enumerate(samples):
        path = cache / _descriptor_folder(white_balance) / f"{sample.name}.npz"
        if not path.exists():
            semantic_path = cache / "semantic" / f"{sample.name}.npz"
            if semantic_path.exists():
                labels = np.load(semantic_path)["labels"]
            else:
                model = model or load_semantic_model("default", "rgb")
                labels = segment_semantic(sample.image, model)
                with atomic_path(semantic_path) as tmp:
                    np.savez_compressed(tmp, labels=labels)
            cells, nuclei = cells_from_semantic(labels)
            field = field_cells(sample.name, nuclei, sample.meta["points"], sample.meta["bethesda"])
            found = field_descriptors(sample.image, cells, nuclei, field, window, white_balance)
            with atomic_path(path) as tmp:
                np.savez(tmp, descriptors=found, **{k: v for k, v in vars(field).items() if k != "name"})
        stored = np.load(path)
        fields.append(FieldCells(sample.name, **{k: stored[k] for k in stored.files if k != "descriptors"}))
        descriptors.append(stored["descriptors"])
        if n % 20 == 0:
            log(f"described {n + 1}/{len(samples)} fields")
    return fields, descriptors


def _descriptor_folder(white_balance: bool, copy: int | None = None) -> str:
    return ("descriptors" if copy is None else f"recolored{copy}") + ("-wb" if white_balance else "")


def recoloring_of(name: str, copy: int):
    """The :class:`~.recolor.Recoloring` of training copy ``copy`` of the field ``name`` (fixed per both)."""
    import hashlib

    from .recolor import random_recoloring

    key = int.from_bytes(hashlib.sha256(f"{name}/{copy}".encode()).digest()[:8], "little")
    return random_recoloring(np.random.default_rng(key))


def describe_recolored(samples, fields, cache, window: int, copies: int, white_balance=False, log=print) -> list:
    """Per training copy 1…``copies``, per field: the descriptors of the same detections on the field
    recolored as another lab's (:func:`recoloring_of`), so the trees learn grades that survive another
    stain and light; cached in ``cache/recolored{copy}`` (the detections are :func:`describe_fields`')."""
    from pathlib import Path

    from ..io._atomic import atomic_path
    from ..semantic.postprocess import cells_from_semantic

    out = []
    for copy in range(1, copies + 1):
        folder, per_field = Path(cache) / _descriptor_folder(white_balance, copy), []
        for n, (sample, field) in enumerate(zip(samples, fields)):
            path = folder / f"{sample.name}.npz"
            if not path.exists():
                cells, nuclei = cells_from_semantic(np.load(Path(cache) / "semantic" / f"{sample.name}.npz")["labels"])
                recolored = recoloring_of(sample.name, copy).on_image(sample.image)
                found = field_descriptors(recolored, cells, nuclei, field, window, white_balance)
                with atomic_path(path) as tmp:
                    np.savez(tmp, descriptors=found)
            per_field.append(np.load(path)["descriptors"])
            if n % 40 == 0:
                log(f"recolored copy {copy}: described {n + 1}/{len(samples)} fields")
        out.append(per_field)
    return out


def grading_inputs(config, samples, cache, log=print) -> tuple[list, list, list]:
    """(fields, descriptors, recolored copies' descriptors) of CRIC ``samples`` as the recipe ``config``
    describes them: white-balanced or not, and ``recolored_copies`` training copies (its ``extra``)."""
    white_balance = bool(config.extra.get("white_balance", False))
    fields, descriptors = describe_fields(samples, cache, config.size, white_balance, log)
    copies = int(config.extra.get("recolored_copies", 0))
    recolored = describe_recolored(samples, fields, cache, config.size, copies, white_balance, log) if copies else []
    return fields, descriptors, recolored


def training_pairs(fields, descriptors, recolored, keep) -> list:
    """[(FieldCells, descriptors)] of the fields ``keep`` (indices): each as it is, then once per recolored
    copy (for :func:`training_set`)."""
    return [(fields[k], per_field[k]) for per_field in (descriptors, *recolored) for k in keep]


def fit_on_fields(config, pairs, windows=None, metadata: dict | None = None, log=print):
    """(grader, training targets) fitted on the training detections (:func:`training_set`) of ``pairs`` =
    [(FieldCells, descriptors)] (:func:`training_pairs`; ``windows``: the fields' :func:`field_windows`
    for a kind with a CNN). With the recipe's ``field_context`` each field's descriptors are read relative
    to the field (:mod:`.context`), the typical reference taken over these training fields."""
    from .context import in_field_context, reference_name, typical_reference

    reference = reference_name(config.extra.get("field_context"))
    typical = typical_reference([d for _, d in pairs], reference) if reference else None
    if typical is not None:
        pairs = [(field, in_field_context(d, typical, reference)) for field, d in pairs]
    x, y, w = training_set(pairs, config.seed, windows=windows)
    return fit_grader(config, x, y, metadata=metadata, windows=w, typical=typical, log=log), y


def fit_grader(
    config,
    descriptors: np.ndarray,
    targets: np.ndarray,
    metadata: dict | None = None,
    windows=None,
    typical: np.ndarray | None = None,
    log=print,
):
    """A Bethesda classifier (:class:`~napari_cervix.cells.classifier.CellClassifier`) whose trees are fitted
    on ``descriptors`` with output-class indices ``targets``; for a kind with a CNN, the CNN is trained on
    ``windows`` = (crops, masks) of the same cells (:func:`field_windows`). ``typical``: the trees read
    each field in its context (:mod:`.context`) and ``descriptors`` are already so (:func:`fit_on_fields`)."""
    from ..cells.classifier import CellClassifier
    from ..cells.training import train_network
    from ..kinds import cell_kind
    from .trees import fit_grading_trees

    kind = cell_kind(config.arch)
    names, _, abnormal = kind.output_space()
    is_abnormal = np.array([c in abnormal for c in names])
    network = None
    if kind.has_network:
        if windows is None:
            raise ValueError(f"{config.arch} trains a CNN: give the cells' windows (crops, masks)")
        crops, masks = windows
        network = train_network(
            config, np.asarray(crops, np.float32), targets, masks=masks, n_classes=len(names), log=log
        )
    return CellClassifier(
        config.arch,
        network,
        names,
        abnormal,
        size=config.size,
        channels=config.channels,
        tta=config.tta,
        model_config=config.model_config(),
        boost=fit_grading_trees(config, descriptors, targets, is_abnormal, typical),
        metadata=metadata,
    )


def field_windows(samples, fields: list[FieldCells], cache, window: int, side: int, log=print) -> list:
    """Per field: (crops N × 3 × side × side float16, masks N × 2 × side × side uint8 in 0–255) of its
    detections' windows (:func:`~.crops.nucleus_crops`, :func:`~.crops.window_masks`) area-resized to the
    CNN's side as :func:`~napari_cervix.cells.classifier.network_view` resizes them at inference; cached
    per field in ``cache/windows{window}_{side}`` (the semantic labels come from :func:`describe_fields`)."""
    from pathlib import Path

    import torch
    import torch.nn.functional as F

    from ..cellset import CellSet
    from ..io._atomic import atomic_path
    from ..semantic.postprocess import cells_from_semantic
    from .crops import nucleus_crops, window_masks

    folder = Path(cache) / f"windows{window}_{side}"
    out = []
    for n, (sample, field) in enumerate(zip(samples, fields)):
        path = folder / f"{sample.name}.npz"
        if not path.exists():
            cells, nuclei = cells_from_semantic(np.load(Path(cache) / "semantic" / f"{sample.name}.npz")["labels"])
            crops = nucleus_crops(sample.image, field.centres, window)
            masks = window_masks(CellSet.from_labels(cells, nuclei > 0), field.labels, nuclei, field.centres, window)
            both = F.interpolate(torch.from_numpy(np.concatenate([crops, masks], 1)), size=(side, side), mode="area")
            both = both.numpy()
            with atomic_path(path) as tmp:
                np.savez(tmp, crops=both[:, :3].astype(np.float16), masks=np.round(both[:, 3:] * 255).astype(np.uint8))
        stored = np.load(path)
        out.append((stored["crops"], stored["masks"]))
        if n % 40 == 0:
            log(f"windows of {n + 1}/{len(samples)} fields")
    return out


def window_arrays(windows) -> tuple[np.ndarray, np.ndarray]:
    """Cached (crops, masks) of :func:`field_windows` as float32 in [0, 1]."""
    crops, masks = windows
    return np.asarray(crops, np.float32), np.asarray(masks, np.float32) / 255.0


def field_folds(fields: list[FieldCells], folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index of each field: stratified group k-fold by the field's most severe annotated class."""
    from ..cells.training import fold_splits

    strata = np.array([f.point_classes.max(initial=0) for f in fields])
    fold_of = np.full(len(fields), -1, np.int64)
    for fold, (_, test) in enumerate(fold_splits(strata, np.arange(len(fields)), folds, seed)):
        fold_of[test] = fold
    return fold_of


#: Not-squamous detections kept per training field (a random subset): leukocyte-rich fields would otherwise
#: make most of the class, and most detections of a field are such objects.
NOT_SQUAMOUS_PER_FIELD = 40


def training_indices(fields: list[FieldCells], seed: int = 0, per_field: int = NOT_SQUAMOUS_PER_FIELD) -> list:
    """Per field, the indices of its training detections: every graded detection and at most ``per_field``
    not-squamous ones (a random subset)."""
    from .cric_cells import NOT_SQUAMOUS, OUTPUT_CLASSES

    rng = np.random.default_rng(seed)
    other = OUTPUT_CLASSES.index(NOT_SQUAMOUS)
    chosen = []
    for field in fields:
        graded = np.flatnonzero((field.targets >= 0) & (field.targets != other))
        rest = np.flatnonzero(field.targets == other)
        if len(rest) > per_field:
            rest = rng.choice(rest, per_field, replace=False)
        chosen.append(np.sort(np.concatenate([graded, rest])))
    return chosen


def training_set(fields_and_descriptors, seed: int = 0, per_field: int = NOT_SQUAMOUS_PER_FIELD, windows=None):
    """(descriptors, targets, windows) of the training detections of ``[(FieldCells, descriptors), …]``
    (:func:`training_indices`); ``windows``: the fields' :func:`field_windows`, or None (then None)."""
    fields = [f for f, _ in fields_and_descriptors]
    chosen = training_indices(fields, seed, per_field)
    x = np.concatenate([d[keep] for (_, d), keep in zip(fields_and_descriptors, chosen)])
    y = np.concatenate([f.targets[keep] for f, keep in zip(fields, chosen)])
    if windows is None:
        return x, y, None
    picked = [window_arrays((w[0][keep], w[1][keep])) for w, keep in zip(windows, chosen)]
    return x, y, (np.concatenate([c for c, _ in picked]), np.concatenate([m for _, m in picked]))
