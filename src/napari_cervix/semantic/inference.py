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
from ..geometry import NUCLEUS
from ..imaging import ImageError, PercentileNormalizer, check_image, color_kind, to_gray
from ..kinds import SemanticKind, kind_of
from ..registry import resolve, sha256_of
from ..scale import Scale, plan_scale, probe_window, resample, resize_labels, resize_probabilities
from ..tiling import EDGE_MARGIN, TileProgress, blend_tiles, run_to_end


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


def load_semantic_model(model="default", color: str | None = None) -> SemanticModel:
    """A registered name, "default" (the registry's default for ``color``, "gray" or "rgb"; gray when not
    given), a safetensors path, or an already loaded :class:`SemanticModel`."""
    if isinstance(model, SemanticModel):
        return model
    path, card = resolve(model, "semantic", color)
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


def _segment_as_is(
    image,
    loaded: SemanticModel,
    *,
    tile_size,
    overlap,
    tta,
    crf,
    return_probabilities,
    precision,
    edge_margin,
) -> Generator[TileProgress, None, np.ndarray | tuple[np.ndarray, np.ndarray]]:
    """:func:`segment_semantic_steps` on ``image`` at its own pixel grid."""
    height, width = int(image.shape[0]), int(image.shape[1])
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
        edge_margin=edge_margin,
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


def _nucleus_finder(loaded: SemanticModel, options: dict, reuse_shape=None):
    """image → bool nucleus mask with plain settings (the scale probes) and ``options``' tile size, overlap,
    precision and edge margin. The probe of shape ``reuse_shape`` (the input as it is) keeps what the final
    pass would return with ``options`` — labels, or (labels, probabilities) when they are asked for — in
    the returned dict under "result", so that pass can reuse it (no test-time augmentation or CRF: those
    the probe does not run)."""
    tile_size, overlap = options["tile_size"], options["overlap"]
    reusable = not (options.get("tta") or options.get("crf"))
    with_probabilities = reusable and bool(options.get("return_probabilities"))
    seen: dict = {}

    def find(image):
        own = image.shape[:2] == reuse_shape
        # Shrunken probes are small: one large tile costs less than several overlapping ones.
        tile = tile_size if own else max(tile_size, 1024)
        result = run_to_end(
            _segment_as_is(
                image,
                loaded,
                tile_size=tile,
                overlap=min(overlap, tile - 1),
                tta=False,
                crf=False,
                return_probabilities=own and with_probabilities,
                precision=options["precision"],
                edge_margin=options["edge_margin"],
            )
        )
        if own and reusable:
            seen["result"] = result
        labels = result[0] if isinstance(result, tuple) else result
        return labels == NUCLEUS

    return find, seen


def semantic_scale(
    image, model="default", pixel_size_um: float | None = None, *, estimate: bool = True, precision: str = "auto"
) -> Scale:
    """The :class:`~napari_cervix.scale.Scale` :func:`segment_semantic` runs ``image`` at: from
    ``pixel_size_um`` when given, else estimated from the nuclei the model finds unless ``estimate`` is
    False (see :mod:`napari_cervix.scale`)."""
    check_image(image)
    loaded = load_semantic_model(model, color_kind(probe_window(image)))
    find, _ = _nucleus_finder(loaded, dict(tile_size=512, overlap=64, precision=precision, edge_margin=EDGE_MARGIN))
    return _plan(image, loaded, pixel_size_um, estimate, find)


def _plan(image, loaded: SemanticModel, pixel_size_um, estimate: bool, find) -> Scale:
    model_input = loaded.card.input
    return plan_scale(
        probe_window(image), model_input.pixel_size_um, model_input.nucleus_area_px, find, pixel_size_um, estimate
    )


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
    edge_margin: int = EDGE_MARGIN,
    pixel_size_um: float | None = None,
    estimate_scale: bool = True,
    return_scale: bool = False,
) -> Generator[TileProgress, None, np.ndarray | tuple]:
    """Labels (H×W uint8: 0 background, 1 cytoplasm, 2 nucleus) for a gray or RGB image of any size.

    With ``return_probabilities`` returns ``(labels, probabilities C×H×W float32)``. The input is read
    tile by tile and never modified. CRF refinement needs the probabilities of the whole image in memory.
    ``precision="auto"`` runs the network in bfloat16 on CPUs that compute it natively (measured 2× faster
    here, validation figures unchanged to 3 decimals) and in float32 elsewhere. The image is resampled to
    the model's pixel size (``pixel_size_um`` given, else estimated unless ``estimate_scale=False``; see
    :mod:`napari_cervix.scale`) and the results mapped back to its grid; ``return_scale`` appends the
    :class:`~napari_cervix.scale.Scale` used to the returned tuple.
    """
    height, width, _ = check_image(image)
    if getattr(image, "ndim", 2) == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    loaded = load_semantic_model(model, color_kind(probe_window(image)))  # "default": the default for the image's color
    options = dict(
        tile_size=tile_size,
        overlap=overlap,
        tta=tta,
        crf=crf,
        return_probabilities=return_probabilities,
        precision=precision,
        edge_margin=edge_margin,
    )
    result, scale = yield from _segment_at_model_scale(image, loaded, pixel_size_um, estimate_scale, options)
    if scale.resamples:
        if return_probabilities:
            labels, probs = result
            result = resize_labels(labels, (height, width)), resize_probabilities(probs, (height, width))
        else:
            result = resize_labels(result, (height, width))
    if return_scale:
        return (*result, scale) if isinstance(result, tuple) else (result, scale)
    return result


def _segment_at_model_scale(image, loaded: SemanticModel, pixel_size_um, estimate: bool, options: dict):
    """(result on the grid of the image resampled to the model's pixel size, the Scale used)."""
    find, seen = _nucleus_finder(loaded, options, tuple(image.shape[:2]))
    scale = _plan(image, loaded, pixel_size_um, estimate, find)
    if not scale.resamples and "result" in seen:
        yield TileProgress(1, 1)
        return seen["result"], scale  # the probe already segmented the whole image as it is
    seen.clear()  # the probe's result is for the image as it is: free it before the resampled pass
    work = resample(np.asarray(image), scale.factor) if scale.resamples else image
    result = yield from _segment_as_is(work, loaded, **options)
    return result, scale


def segment_semantic_at_model_scale_steps(
    image, model="default", *, pixel_size_um: float | None = None, estimate_scale: bool = True, **options
) -> Generator[TileProgress, None, tuple[np.ndarray, Scale]]:
    """(labels of ``image`` resampled to the model's pixel size, the Scale used): for pipelines that go
    on working at the model's scale (:func:`napari_cervix.field.analyze_field`) and map back at the end.
    ``options`` are :func:`segment_semantic_steps`' ``tile_size``, ``overlap``, ``precision``, ``edge_margin``."""
    check_image(image)
    if getattr(image, "ndim", 2) == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    settings = dict(tile_size=512, overlap=64, tta=False, crf=False, return_probabilities=False, precision="auto")
    settings["edge_margin"] = EDGE_MARGIN
    unknown = sorted(set(options) - {"tile_size", "overlap", "precision", "edge_margin"})
    if unknown:
        raise TypeError(f"unexpected options {unknown}")
    settings.update(options)
    return (
        yield from _segment_at_model_scale(
            image, load_semantic_model(model, color_kind(probe_window(image))), pixel_size_um, estimate_scale, settings
        )
    )


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
    edge_margin: int = EDGE_MARGIN,
    pixel_size_um: float | None = None,
    estimate_scale: bool = True,
    return_scale: bool = False,
    progress: Callable[[TileProgress], None] | None = None,
) -> np.ndarray | tuple:
    """Labels (H×W uint8: 0 background, 1 cytoplasm, 2 nucleus) for a gray or RGB image of any size.

    ``model``: "default", a registered semantic model, a safetensors file or a loaded model.
    ``tile_size``/``overlap``: the sliding window (memory is one band of tiles whatever the image size).
    ``tta``: average horizontal/vertical flips. ``crf``: refine with a dense CRF (needs the whole image's
    probabilities in memory). ``return_probabilities``: return ``(labels, C×H×W float32 probabilities)``.
    ``precision``: "auto" (bfloat16 on CPUs that compute it natively, else float32), "float32", "bfloat16".
    ``edge_margin``: reflected pixels added along the image's edges, so the network's own border falls
    outside the image (0: the network sees the image's edge as its border, as a bioimage.io consumer runs it).
    ``pixel_size_um``: µm per pixel of the image; the image is resampled to the model's and the labels
    mapped back. None: estimated from the image's nuclei (``estimate_scale=False`` runs it as it is).
    ``return_scale``: also return the :class:`~napari_cervix.scale.Scale` used (last in the tuple).
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
        edge_margin=edge_margin,
        pixel_size_um=pixel_size_um,
        estimate_scale=estimate_scale,
        return_scale=return_scale,
    )
    return run_to_end(steps, progress)


__all__ = [
    "ImageError",
    "SemanticModel",
    "load_semantic_model",
    "segment_semantic",
    "segment_semantic_at_model_scale_steps",
    "segment_semantic_steps",
    "semantic_scale",
]
