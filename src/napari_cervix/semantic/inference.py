"""Semantic inference: tiled sliding window through the shared tiling engine, flip TTA, optional CRF.

:func:`segment_semantic_steps` is a generator (one :class:`~napari_cervix.tiling.TileProgress` per tile,
for napari progress bars and cancel) returning the labels; :func:`segment_semantic` drives it for the
console and the CLI. Loaded networks are cached per weights file and hash.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cards import SemanticCard
from ..imaging import ImageError, PercentileNormalizer, check_image, to_gray
from ..kinds import SemanticKind, kind_of
from ..registry import resolve, sha256_of
from ..tiling import TileProgress, blend_tiles, run_to_end


@dataclass
class SemanticModel:
    network: object  # torch.nn.Module
    card: SemanticCard
    path: Path
    kind: SemanticKind

    @property
    def metadata(self) -> dict:
        return self.card.metadata

    @property
    def classes(self) -> list[str]:
        return list(self.card.classes)


def _channel_percentile(image, **parameters):
    from .data import ChannelPercentileNormalizer  # RGB models only: their data module is already loaded

    return ChannelPercentileNormalizer(image, **parameters)


#: How each ``normalization.kind`` of a model card is built for an image: called with the image and the
#: card's parameters, it returns a function mapping a tile to network input (H×W gray or H×W×3).
NORMALIZERS = {"percentile": PercentileNormalizer, "channel-percentile": _channel_percentile}


def build_normalizer(card: SemanticCard, image):
    """The normalizer the model was trained with, fitted to this image (percentiles of the whole image)."""
    spec = dict(card.input.normalization)
    kind = spec.pop("kind")
    if kind not in NORMALIZERS:
        raise card.error("normalization", f"semantic models normalize by {sorted(NORMALIZERS)}, not {kind!r}")
    return NORMALIZERS[kind](image, **spec)


def _is_constant(normalizer) -> bool:
    """Whether the image gave the normalizer no range to map (a blank field)."""
    span = np.asarray(normalizer.hi, np.float64) - np.asarray(normalizer.lo, np.float64)
    return bool(np.all(span <= 1e-6 * np.maximum(np.abs(np.asarray(normalizer.hi, np.float64)), 1.0)))


_cache: dict[tuple[str, str], SemanticModel] = {}
_cache_lock = threading.Lock()


def load_semantic_model(model="default") -> SemanticModel:
    """A registered name, "default", a safetensors path, or an already loaded :class:`SemanticModel`."""
    if isinstance(model, SemanticModel):
        return model
    path, card = resolve(model, "semantic")
    key = (str(path), sha256_of(path))
    with _cache_lock:
        if key not in _cache:
            model_kind = kind_of(card)
            _cache[key] = SemanticModel(model_kind.load(path, card), card, path, model_kind)
        return _cache[key]


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16/AMX); bf16 inference then runs about
    2× faster than float32 (``benchmarks/semantic_speed.py``)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _predict_fn(loaded: SemanticModel, tta: bool, precision: str):
    import torch

    if precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}")
    bf16 = precision == "bfloat16" or (precision == "auto" and native_bfloat16())
    # channels-last lets oneDNN pick its fast bf16 convolution kernels.
    memory_format = torch.channels_last if bf16 else torch.contiguous_format
    net = loaded.network.to(memory_format=memory_format)

    def forward(x):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return loaded.kind.predict(net, x.contiguous(memory_format=memory_format))

    def predict(tile: np.ndarray) -> np.ndarray:
        """Class probabilities of one normalized tile: H×W (gray) or H×W×C."""
        planes = tile[None] if tile.ndim == 2 else tile.transpose(2, 0, 1)
        x = torch.from_numpy(np.ascontiguousarray(planes, np.float32))[None]
        with torch.inference_mode():
            probs = forward(x)
            if tta:  # average over horizontal and vertical flips
                probs = (probs + forward(x.flip(-1)).flip(-1) + forward(x.flip(-2)).flip(-2)) / 3
        return probs[0].numpy()

    return predict


def segment_semantic_steps(
    image,
    model="default",
    *,
    tile_size: int = 512,
    overlap: int = 64,
    tta: bool = False,
    crf: bool = False,
    return_probabilities: bool = False,
    precision: str = "auto",
) -> Generator[TileProgress, None, np.ndarray | tuple[np.ndarray, np.ndarray]]:
    """Labels (H×W uint8: 0 background, 1 cytoplasm, 2 nucleus) for a gray or RGB image of any size.

    With ``return_probabilities`` returns ``(labels, probabilities C×H×W float32)``. The input is read
    tile by tile and never modified. CRF refinement needs the probabilities of the whole image in memory.
    ``precision="auto"`` runs the network in bfloat16 on CPUs that compute it natively (measured 2× faster
    here, validation figures unchanged to 3 decimals) and in float32 elsewhere.
    """
    height, width, _ = check_image(image)
    if getattr(image, "ndim", 2) == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    loaded = load_semantic_model(model)
    normalizer = build_normalizer(loaded.card, image)  # the preprocessing its card names
    n_classes = len(loaded.classes)
    if _is_constant(normalizer):
        # A constant image has no structure to segment: all background, without asking the network.
        yield TileProgress(1, 1)
        labels = np.zeros((height, width), np.uint8)
        if return_probabilities:
            probs = np.zeros((n_classes, height, width), np.float32)
            probs[0] = 1
            return labels, probs
        return labels
    predict = _predict_fn(loaded, tta, precision)
    keep_probs = return_probabilities or crf
    probs_or_labels = yield from blend_tiles(
        image,
        lambda tile: predict(normalizer(tile)),
        channels=n_classes,
        tile_size=tile_size,
        overlap=overlap,
        divisor=loaded.card.divisor,
        finalize=None if keep_probs else (lambda block: block.argmax(0).astype(np.uint8)),
        out_dtype=np.float32 if keep_probs else np.uint8,
    )
    if not keep_probs:
        return probs_or_labels
    probs = probs_or_labels
    if crf:
        from .crf import dense_crf

        normalized = normalizer(np.asarray(image))
        probs = dense_crf(probs, normalized if normalized.ndim == 2 else to_gray(normalized))  # CRF reads gray
    labels = probs.argmax(0).astype(np.uint8)
    return (labels, probs) if return_probabilities else labels


def segment_semantic(
    image,
    model="default",
    *,
    tile_size: int = 512,
    overlap: int = 64,
    tta: bool = False,
    crf: bool = False,
    return_probabilities: bool = False,
    precision: str = "auto",
    progress: Callable[[TileProgress], None] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Labels (H×W uint8: 0 background, 1 cytoplasm, 2 nucleus) for a gray or RGB image of any size.

    ``model``: "default", a registered semantic model, a safetensors file or a loaded model.
    ``tile_size``/``overlap``: the sliding window (memory is one band of tiles whatever the image size).
    ``tta``: average horizontal/vertical flips. ``crf``: refine with a dense CRF (needs the whole image's
    probabilities in memory). ``return_probabilities``: return ``(labels, C×H×W float32 probabilities)``.
    ``precision``: "auto" (bfloat16 on CPUs that compute it natively, else float32), "float32", "bfloat16".
    ``progress``: called with each :class:`~napari_cervix.tiling.TileProgress`.
    The generator form for progress bars and cancelling is :func:`segment_semantic_steps`.
    """
    steps = segment_semantic_steps(
        image,
        model,
        tile_size=tile_size,
        overlap=overlap,
        tta=tta,
        crf=crf,
        return_probabilities=return_probabilities,
        precision=precision,
    )
    return run_to_end(steps, progress)


__all__ = ["ImageError", "SemanticModel", "load_semantic_model", "segment_semantic", "segment_semantic_steps"]
