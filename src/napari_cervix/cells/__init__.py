"""Per-cell measurements and classification (Qt-free; torch is imported only when classifying)."""

from __future__ import annotations

from .features import LBP_UNIFORM_BINS, feature_columns, measure_cells


def classify_cells(image, cells, nuclei=None, model="default", **options):
    """See :func:`napari_cervix.cells.classify.classify_cells`."""
    from .classify import classify_cells as run

    return run(image, cells, nuclei, model, **options)


def load_classifier(model="default"):
    """See :func:`napari_cervix.cells.classifier.load_classifier`."""
    from .classifier import load_classifier as load

    return load(model)


__all__ = ["measure_cells", "classify_cells", "load_classifier", "feature_columns", "LBP_UNIFORM_BINS"]
