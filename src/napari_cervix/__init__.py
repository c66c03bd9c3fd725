"""napari-cervix: Pap-smear analysis — semantic and instance segmentation, per-cell features and classes.

The console API (the same functions as the dock widgets and the CLI) is importable without napari; see
:mod:`napari_cervix.api`. Its functions are loaded on first use, so ``import napari_cervix`` is fast.
"""

__version__ = "0.1.0"  # the one place the version is written (setup.cfg reads it)

from ._compat import avoid_triton_llvm_clash

avoid_triton_llvm_clash()  # before anything of ours imports torch: see _compat for the crash it prevents

_API = ("analyze_field", "classify_cells", "measure_cells", "review_report", "segment_instances", "segment_semantic")
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'napari_cervix' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
