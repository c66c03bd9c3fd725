import numpy as np
import pytest
import torch

# Import torch's compiler stack (and the LLVM that triton bundles) before any napari viewer opens an
# OpenGL context: loading it afterwards segfaults (Mesa's llvmpipe has its own LLVM; see
# napari_cervix._compat, which guards users' sessions and has its own test in test_compat.py).
import torch._dynamo  # noqa: F401,E402

from napari_cervix.registry import save_weights


@pytest.fixture(scope="session")
def tiny_semantic_weights(tmp_path_factory):
    """A real (untrained, tiny) semantic model file: exercises loading and inference without shipped weights."""
    from napari_cervix.semantic.models import build_model

    torch.manual_seed(0)
    net = build_model("2se-unet", width=4)
    path = tmp_path_factory.mktemp("weights") / "tiny-semantic.safetensors"
    meta = {
        "task": "semantic",
        "architecture": "2se-unet",
        "arch_options": {"width": 4},
        "in_channels": 1,
        "classes": ["background", "cytoplasm", "nucleus"],
        "divisor": 32,
    }
    save_weights(net.state_dict(), path, meta)
    return str(path)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
