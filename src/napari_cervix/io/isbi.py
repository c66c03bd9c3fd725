"""ISBI 2014 and 2015 Overlapping Cervical Cytology challenge ground truth (Lu et al. 2015, 2016).

* ISBI 2014: ``isbi_train_GT.mat`` (MATLAB v5) with ``train_Cytoplasm{i}{k}`` per-cell masks and
  ``train_Nuclei{i}``; entry i belongs to ``images/{i+1}.tif``.
* ISBI 2015: ``CytoGroundTruth.mat`` (MATLAB v7.3 = HDF5) with one cell array of per-cell masks per
  frame, mapped to EDF images by ``frames_to_edf.json``; and the per-cell ``EDF*.npz`` export of the
  same data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..cellset import CellSet, Masks
from .edf import read_nucleus_gt
from .images import find_image, read_image
from .sample import CellSample

ISBI2014_MAT = "isbi_train_GT.mat"
ISBI2015_MAT = "CytoGroundTruth.mat"
ISBI2015_MAPPING = "frames_to_edf.json"


def _check_masks(masks, shape: tuple[int, int], where: str) -> list[np.ndarray]:
    """2-D {0,1} masks that must all have the image's shape."""
    masks = [np.asarray(m) for m in masks]
    for k, mask in enumerate(masks):
        if mask.shape != tuple(shape):
            raise ValueError(f"{where}: mask {k} has shape {mask.shape}, the image is {tuple(shape)}")
    return masks


def _cell_set(masks, shape: tuple[int, int], where: str) -> CellSet:
    """The cell set of full-size per-cell masks (cell k → id k + 1), cropped one mask at a time."""
    return CellSet.from_stack(_check_masks(masks, shape, where), shape=shape)


def read_isbi2014(path) -> list[CellSample]:
    """ISBI 2014 samples from the folder with ``isbi_train_GT.mat`` and ``images/``, or the .mat."""
    import scipy.io

    path = Path(path)
    mat_path = path / ISBI2014_MAT if path.is_dir() else path
    if not mat_path.is_file():
        raise FileNotFoundError(f"ISBI 2014 ground truth not found: {mat_path}")
    try:
        mat = scipy.io.loadmat(mat_path, variable_names=["train_Cytoplasm", "train_Nuclei"])
    except Exception as exc:  # scipy raises several unrelated types for truncated or v7.3 files
        raise ValueError(f"{mat_path}: not a readable MATLAB v5 file ({type(exc).__name__}: {exc})") from exc
    for key in ("train_Cytoplasm", "train_Nuclei"):
        if key not in mat:
            raise ValueError(f"{mat_path}: no '{key}' variable; is this the ISBI 2014 isbi_train_GT.mat?")
    cytoplasm, nuclei = mat["train_Cytoplasm"].ravel(), mat["train_Nuclei"].ravel()
    if len(cytoplasm) != len(nuclei):
        raise ValueError(f"{mat_path}: {len(cytoplasm)} train_Cytoplasm entries but {len(nuclei)} train_Nuclei")

    images_dir = mat_path.parent / "images"
    samples = []
    for i, (cell_masks, nucleus_mask) in enumerate(zip(cytoplasm, nuclei)):
        image_path = find_image(images_dir, str(i + 1))
        if image_path is None:
            raise FileNotFoundError(f"{mat_path}: entry {i} needs {images_dir / f'{i + 1}.tif'}, which is missing")
        image = read_image(image_path)
        where = f"{mat_path} entry {i}"
        # A MATLAB cell array loads as an object array; a lone numeric mask is one cell.
        masks = list(cell_masks.ravel()) if cell_masks.dtype == object else [cell_masks]
        samples.append(
            CellSample(
                image=image,
                cells=_cell_set(masks, image.shape[:2], where),
                nuclei=_check_masks([nucleus_mask], image.shape[:2], where)[0].astype(bool),
                name=image_path.stem,
                source=str(image_path),
                meta={"dataset": "isbi2014", "index": i, "annotation": str(mat_path)},
            )
        )
    return samples


def _matlab_cell_masks(h5file, node) -> list[np.ndarray]:
    """Masks under one v7.3 node; a cell array (dataset of object references) is followed down."""
    import h5py

    if h5py.check_ref_dtype(node.dtype) is not None:
        masks = []
        # C order over the HDF5 shape is MATLAB's column-major order (HDF5 stores it transposed).
        for ref in np.asarray(node[()]).ravel():
            masks.extend(_matlab_cell_masks(h5file, h5file[ref]))
        return masks
    if node.attrs.get("MATLAB_empty", 0):
        return []
    return [np.asarray(node[()]).T]  # MATLAB is column-major: transpose back to row-major H×W


def read_cyto_ground_truth(mat_path, entries=None) -> list[CellSet]:
    """The ``CytoGroundTruth`` cell array of an ISBI 2015 v7.3 .mat: one cell set per entry.

    ``entries`` selects entry indices (default all), so unused frames are never decompressed.
    """
    import h5py

    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise FileNotFoundError(f"ISBI 2015 ground truth not found: {mat_path}")
    if not h5py.is_hdf5(mat_path):
        raise ValueError(f"{mat_path}: not a MATLAB v7.3 (HDF5) file")
    with h5py.File(mat_path, "r") as h5file:
        if "CytoGroundTruth" not in h5file:
            raise ValueError(f"{mat_path}: no 'CytoGroundTruth' variable (found {sorted(h5file.keys())})")
        top = h5file["CytoGroundTruth"]
        if h5py.check_ref_dtype(top.dtype) is None:
            raise ValueError(f"{mat_path}: 'CytoGroundTruth' is not a MATLAB cell array")
        refs = np.asarray(top[()]).ravel()
        cell_sets = []
        for index in range(len(refs)) if entries is None else entries:
            if not 0 <= index < len(refs):
                raise ValueError(f"{mat_path}: entry {index} requested, the file has {len(refs)}")
            masks = _matlab_cell_masks(h5file, h5file[refs[index]])
            shape = masks[0].shape if masks else (0, 0)
            cell_sets.append(_cell_set(masks, shape, f"{mat_path} entry {index}"))
    return cell_sets


def _isbi2015_image_dirs(mat_path: Path) -> list[Path]:
    # The shared-data layout keeps EDF images (and nucleus GT) in a sibling folder or COCO export.
    folder = mat_path.parent
    return [folder, folder / "images", folder.parent / "isbi2014_edf", folder / "coco" / "images"]


def read_isbi2015_mat(mat_path, image_dir=None) -> list[CellSample]:
    """ISBI 2015 samples from ``CytoGroundTruth.mat`` + ``frames_to_edf.json`` beside it.

    Each entry's EDF image is looked up in ``image_dir`` (default: the .mat's folder, its
    ``images/``, ``../isbi2014_edf/`` and ``coco/images/``); nuclei come from ``EDFxxx_GT.png``
    found there, if any.
    Entries whose mapping has no EDF image are skipped: their cells cannot be shown on anything.
    """
    mat_path = Path(mat_path)
    mapping_path = mat_path.parent / ISBI2015_MAPPING
    if not mapping_path.is_file():
        raise FileNotFoundError(f"{mat_path}: needs {mapping_path} to map its entries to EDF images")
    try:
        mapping = json.loads(mapping_path.read_text())
        pairs = [(int(e["index_in_mat"]), e["isbi2014_edf"], e.get("isbi2015_frame")) for e in mapping]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{mapping_path}: expected a list of {{index_in_mat, isbi2014_edf}} ({exc})") from exc
    pairs = [p for p in pairs if p[1]]
    search = [Path(image_dir)] if image_dir is not None else _isbi2015_image_dirs(mat_path)
    cell_sets = read_cyto_ground_truth(mat_path, [index for index, _, _ in pairs])

    samples = []
    for (index, edf_name, frame), cells in zip(pairs, cell_sets):
        image_path = next((p for p in (find_image(d, edf_name) for d in search) if p is not None), None)
        if image_path is None:
            raise FileNotFoundError(
                f"{mat_path}: image {edf_name} for entry {index} not found in {', '.join(map(str, search))}"
            )
        image = read_image(image_path)
        if len(cells) == 0:
            cells = CellSet(Masks(image.shape[:2]))
        if cells.shape != image.shape[:2]:
            raise ValueError(f"{mat_path} entry {index}: masks are {cells.shape}, {image_path} is {image.shape[:2]}")
        gt_path = next((p for p in (find_image(d, f"{edf_name}_GT") for d in search) if p is not None), None)
        samples.append(
            CellSample(
                image=image,
                cells=cells,
                nuclei=read_nucleus_gt(gt_path) if gt_path is not None else None,
                name=edf_name,
                source=str(image_path),
                meta={
                    "dataset": "isbi2015",
                    "frame": frame,
                    "index_in_mat": index,
                    "annotation": str(mat_path),
                },
                partial_annotation=True,  # ISBI 2015 annotates only some cells of each frame
            )
        )
    return samples


def read_cell_npz(path) -> CellSample:
    """One image with per-cell masks from .npz: ``image``, ``cyto`` (N×H×W), optional ``nuclei``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"per-cell .npz not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:  # zipfile/pickle/format errors all mean "not a valid npz"
        raise ValueError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") from exc
    if "image" not in arrays or "cyto" not in arrays:
        raise ValueError(f"{path}: needs arrays 'image' and 'cyto'; it has {sorted(arrays)}")
    image, cells = arrays["image"], arrays["cyto"]
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if cells.ndim == 2:
        cells = cells[None]
    if cells.ndim != 3 or cells.shape[1:] != image.shape[:2]:
        raise ValueError(f"{path}: 'cyto' has shape {cells.shape}, expected N×{image.shape[0]}×{image.shape[1]}")
    nuclei = arrays.get("nuclei")
    if nuclei is not None and nuclei.shape != image.shape[:2]:
        raise ValueError(f"{path}: 'nuclei' has shape {nuclei.shape}, the image is {image.shape[:2]}")
    return CellSample(
        image=image,
        cells=CellSet.from_stack(cells, shape=image.shape[:2]),
        nuclei=None if nuclei is None else nuclei.astype(bool),
        name=path.stem,
        source=str(path),
        meta={"dataset": "isbi2015"},
        partial_annotation=True,  # ISBI 2015 annotates only some cells of each frame
    )


def read_isbi2015(path) -> list[CellSample]:
    """ISBI 2015 samples from a folder of ``EDF*.npz`` (preferred: cheap) or of
    ``CytoGroundTruth.mat``, or from one such file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ISBI 2015 data not found: {path}")
    if path.is_file():
        return read_isbi2015_mat(path) if path.suffix.lower() == ".mat" else [read_cell_npz(path)]
    npz_files = sorted(path.glob("*.npz"))
    if npz_files:
        return [read_cell_npz(p) for p in npz_files]
    if (path / ISBI2015_MAT).is_file():
        return read_isbi2015_mat(path / ISBI2015_MAT)
    raise FileNotFoundError(f"{path}: no *.npz files and no {ISBI2015_MAT}")
