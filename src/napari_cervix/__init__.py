"""napari-cervix: Pap-smear analysis — semantic and instance segmentation, per-cell features and classes.

The console API (the same functions as the dock widgets and the CLI) is importable without napari.
"""

__version__ = "0.1.0"

from ._compat import avoid_triton_llvm_clash

avoid_triton_llvm_clash()  # before anything of ours imports torch: see _compat for the crash it prevents

from .api import classify_cells  # noqa: E402 - after the guard above, measure_cells, segment_instances, segment_semantic

__all__ = ["classify_cells", "measure_cells", "segment_instances", "segment_semantic", "__version__"]
