"""The console API: the same functions the dock widgets and the CLI call, with their own signatures.

    >>> import napari_cervix as nc
    >>> field = nc.analyze_field(image)        # cells, Bethesda grade per cell, triage: the one call
    >>> field.table, field.summary["triage"]
    >>> labels = nc.segment_semantic(viewer.layers["smear"].data)            # 0 bg, 1 cytoplasm, 2 nucleus
    >>> result = nc.segment_instances(image)                                  # overlapping cells + nuclei
    >>> table = nc.measure_cells(image, result.cells, result.nuclei)          # one row per cell
    >>> table = nc.classify_cells(image, cell_labels)                         # + class and probabilities

These are the implementing functions themselves (``help(nc.segment_semantic)`` shows every option).
``import napari_cervix`` stays light: the package loads this module on first use of one of its names, and
torch / mmdet are imported only when a model runs.
"""

from .cells.classify import classify_cells
from .cells.features import measure_cells
from .field import analyze_field
from .instances.inference import segment_instances
from .report import review_report
from .semantic.inference import segment_semantic

__all__ = ["analyze_field", "classify_cells", "measure_cells", "review_report", "segment_instances", "segment_semantic"]
