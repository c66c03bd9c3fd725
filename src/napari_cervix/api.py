"""The console API: the same functions the dock widgets and the CLI call.

    >>> import napari_cervix as nc
    >>> labels = nc.segment_semantic(viewer.layers["smear"].data)            # 0 bg, 1 cytoplasm, 2 nucleus
    >>> result = nc.segment_instances(image)                                  # overlapping cells + nuclei
    >>> table = nc.measure_cells(image, result.cells, result.nuclei)          # one row per cell
    >>> table = nc.classify_cells(image, cell_labels)                         # + class and probabilities

Heavy libraries (torch, mmdet) are imported on first call, not on ``import napari_cervix``.
"""

from __future__ import annotations


def segment_semantic(image, model="default", **options):
    """H×W uint8 labels (0 background, 1 cytoplasm, 2 nucleus); see
    :func:`napari_cervix.semantic.inference.segment_semantic_steps` for the options."""
    from .semantic.inference import segment_semantic as run

    return run(image, model, **options)


def segment_instances(image, model="default", **options):
    """Every cell and nucleus as its own object, overlaps intact (needs mmdet + mmcv)."""
    from .instances import segment_instances as run

    return run(image, model, **options)


def measure_cells(image, cells, nuclei=None, **options):
    """pandas DataFrame with one row per cell: areas, N/C ratio, shape, intensity, texture."""
    from .cells import measure_cells as run

    return run(image, cells, nuclei, **options)


def classify_cells(image, cells, nuclei=None, model="default", **options):
    """Measurements plus predicted class, class probabilities and the reviewable flag per cell."""
    from .cells import classify_cells as run

    return run(image, cells, nuclei, model=model, **options)
