"""Guards against crashes caused by the environment rather than by our code.

Mesa's OpenGL drivers (llvmpipe on machines without a GPU, radeonsi, …) load their own libLLVM into the
process as soon as napari opens its canvas. The CUDA builds of torch ship triton, whose extension carries
another LLVM; importing triton *after* Mesa's LLVM is loaded segfaults the whole process (measured here:
napari viewer open → ``import torchvision.ops`` → ``torch._dynamo`` → ``import triton`` → SIGSEGV).
Triton only serves ``torch.compile`` on GPUs, which this plugin never uses, so when Mesa's LLVM is
already in the process and triton is not, we make ``import triton`` fail cleanly instead: torch then
behaves as if triton were not installed.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)


def _process_maps() -> str:
    try:
        with open("/proc/self/maps") as fh:
            return fh.read()
    except OSError:  # not Linux: no Mesa/triton clash to avoid
        return ""


def avoid_triton_llvm_clash(maps: str | None = None, modules: dict | None = None) -> bool:
    """Block ``import triton`` if another LLVM is already loaded and triton is not; True if it blocked."""
    modules = sys.modules if modules is None else modules
    if "triton" in modules:
        return False  # already imported (first): nothing can clash any more
    maps = _process_maps() if maps is None else maps
    if "libLLVM" not in maps:
        return False
    modules["triton"] = None  # `import triton` now raises ImportError; torch treats triton as absent
    log.info("napari-cervix: OpenGL's LLVM is loaded; disabled triton (torch.compile only) to avoid a crash")
    return True
