import os
import subprocess
import sys

import pytest

from napari_cervix._compat import avoid_triton_llvm_clash


def test_blocks_triton_only_when_another_llvm_is_loaded_first():
    modules = {}
    assert not avoid_triton_llvm_clash(maps="7f00 r-xp /usr/lib/libc.so.6", modules=modules)
    assert "triton" not in modules
    assert avoid_triton_llvm_clash(maps="7f00 r-xp /usr/lib/x86_64-linux-gnu/libLLVM-15.so.1", modules=modules)
    assert modules["triton"] is None
    already = {"triton": object()}
    assert not avoid_triton_llvm_clash(maps="libLLVM-15.so.1", modules=already)


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run the suite under xvfb-run)")
def test_torch_vision_ops_load_after_a_napari_viewer_opened_opengl():
    """The crash this guards against: viewer open (Mesa LLVM loaded), then torchvision.ops → triton."""
    script = (
        "import napari\n"
        "viewer = napari.Viewer(show=True)\n"
        "import napari_cervix\n"
        "import torchvision.ops\n"
        "viewer.close()\n"
        "print('survived')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0 and "survived" in result.stdout, result.stderr[-2000:]
