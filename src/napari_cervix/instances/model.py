"""Build, save and load IMBMDCR-Net detectors; run one network pass on one image tile.

Two backends run the same weights: ``"mmdet"`` (MMDetection 3.3 + mmcv with its compiled ops: how the
model is defined and trained) and ``"torch"`` (:mod:`.portable`: torch + torchvision only, the same
detections; what a plain ``pip install`` can run). ``backend="auto"`` (the default) takes the torch path:
it needs nothing beyond the plugin's own dependencies, is faster on CPU, and gives the same results
whichever extras are installed; mmdet is used only when asked for, or for a config the torch backend
does not implement (when mmdet is importable).

The only place (with :mod:`.modules`, :mod:`.train`, :mod:`.portable`) where torch, mmengine, mmcv and
mmdet are imported — and only inside functions, so ``import napari_cervix.instances`` stays light and the
rest of the plugin works without them.

Shipped and user weights are plain state dicts in safetensors (:func:`napari_cervix.registry.save_weights`)
whose metadata holds the whole model config, so a file is self-describing: loading rebuilds exactly the
architecture it was trained with, and a file of another task/classes/architecture is refused clearly.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from ..geometry import pad_to_multiple
from ..imaging import check_image, to_gray
from ..kinds import KINDS, kind_of

CLASSES = ("cell", "nucleus")
_PRESET_KINDS = [kind for kind in KINDS.values() if kind.task == "instances"]
PRESETS = {kind.preset: kind.config_file for kind in _PRESET_KINDS}  # preset → its file in configs/
ARCHITECTURE = {kind.preset: kind.name for kind in _PRESET_KINDS}  # preset → the kind its weights name
STOCK_CONFIG = "cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py"  # mmdet's own, for the benchmark
MIN_INPUT = 64  # smaller tiles are padded: the backbone downsamples 32× and P6 64×
BACKENDS = ("auto", "torch", "mmdet")


class InstancesUnavailable(RuntimeError):
    """The backend asked for cannot be imported (mmdet / mmcv with its compiled ops, or torchvision);
    the message says what to install."""


def require_mmdet() -> None:
    """Import mmcv's compiled ops and mmdet, or raise :class:`InstancesUnavailable` with a clear fix."""
    try:
        import mmengine  # noqa: F401
    except ImportError as err:
        raise InstancesUnavailable(
            "training the instance model and backend='mmdet' need mmengine, mmcv and mmdet "
            "(inference runs without them on backend='torch'): "
            "pip install 'napari-cervix[instances]' and mmcv==2.1.0 built with its ops "
            f"(missing: {err.name})"
        ) from err
    try:
        import mmcv.ops  # noqa: F401  (loads mmcv's compiled extension)
    except (ImportError, OSError) as err:
        raise InstancesUnavailable(
            "training and the mmdet backend need mmcv's compiled ops (mmcv 2.1.0 built with MMCV_WITH_OPS=1, "
            "e.g. `pip install --no-binary mmcv mmcv==2.1.0`); importing mmcv.ops failed: "
            f"{err}"
        ) from err
    try:
        import mmdet  # noqa: F401
    except ImportError as err:
        raise InstancesUnavailable(f"training and the mmdet backend need mmdet 3.3: {err}") from err
    from . import modules  # noqa: F401  (registers IMBMDCR-Net's modules)


def mmdet_available() -> bool:
    try:
        require_mmdet()
    except InstancesUnavailable:
        return False
    return True


def require_backend(backend: str = "auto") -> str:
    """The backend that will run (``"torch"`` or ``"mmdet"``), or :class:`InstancesUnavailable` saying
    what to install. ``"auto"`` is the torch path (see the module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "mmdet":
        require_mmdet()
        return "mmdet"
    try:
        import torchvision.ops  # noqa: F401
    except ImportError as err:
        raise InstancesUnavailable(f"instance segmentation needs torchvision (pip install torchvision): {err}") from err
    return "torch"


def config_path(preset: str) -> Path:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return Path(str(resources.files("napari_cervix.instances") / "configs" / PRESETS[preset]))


def load_config(preset: str = "lite"):
    """The preset's full mmengine ``Config`` (model, classes, in_channels, train_size, schedule)."""
    require_mmdet()
    from mmengine.config import Config

    return Config.fromfile(str(config_path(preset)))


def stock_config():
    """mmdet's stock ``cascade-mask-rcnn_r50_fpn`` (mask head at every stage), 2 classes, 3 channels."""
    require_mmdet()
    import mmdet
    from mmengine.config import Config

    path = Path(mmdet.__file__).parent / ".mim" / "configs" / STOCK_CONFIG
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None  # no download of ImageNet weights
    for head in cfg.model.roi_head.bbox_head:
        head.num_classes = len(CLASSES)
    cfg.model.roi_head.mask_head.num_classes = len(CLASSES)
    cfg.classes, cfg.in_channels, cfg.train_size = CLASSES, 3, 512
    return cfg


def _resolve_types(node):
    """Config → ConfigDict with our torchvision layer classes put in where mmcv looks them up by name.

    mmdet's RoI extractors only accept names of classes in ``mmcv.ops``, or a class object.
    """
    from mmengine.config import ConfigDict

    from .modules import TVRoIAlign

    def walk(value):
        if isinstance(value, dict):
            out = {k: walk(v) for k, v in value.items()}
            if out.get("type") == "TVRoIAlign":
                out["type"] = TVRoIAlign
            return out
        if isinstance(value, (list, tuple)):
            return type(value)(walk(v) for v in value)
        return value

    return ConfigDict(walk(node))


def build_detector(model_cfg: dict, device: str = "cpu"):
    """An mmdet detector (random weights, ``init_weights`` applied) from a model config dict."""
    require_mmdet()
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.logging import MMLogger

    register_all_modules(init_default_scope=True)
    # MODELS.build needs a ConfigDict (attribute access inside mmdet), not a plain dict.
    model = MODELS.build(_resolve_types(copy.deepcopy(dict(model_cfg))))
    # init_weights logs one INFO line per parameter through mmengine's logger: keep consoles readable.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model.to(torch.device(device))


def config_to_json(cfg) -> dict:
    """The parts of a preset config stored in a weights file's metadata (JSON-safe)."""
    return json.loads(
        json.dumps(
            {
                "model": cfg.model.to_dict() if hasattr(cfg.model, "to_dict") else dict(cfg.model),
                "classes": list(cfg.classes),
                "in_channels": int(cfg.in_channels),
                "train_size": int(cfg.train_size),
            }
        )
    )


@dataclass
class Detector:
    """A built detector with what inference needs to feed it."""

    module: object  # the network (torch.nn.Module), in eval mode: an mmdet model or a portable one
    classes: tuple
    in_channels: int
    train_size: int
    meta: dict
    device: str = "cpu"
    backend: str = "mmdet"  # which library ``module`` is: "mmdet" or "torch" (:mod:`.portable`)

    @property
    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.module.parameters()))

    def predict_tile(self, tile: np.ndarray, *, score_floor: float = 0.05, max_detections: int = 100):
        """One network pass on a normalized gray tile (h×w float32 in 0–255).

        Returns (masks K×h×w bool, scores K, labels K int: index into ``classes``), sorted by score.
        Tiles smaller than :data:`MIN_INPUT` or not a multiple of 32 are padded with their median
        (background-like, unlike zeros or mirroring, which create dark edges or mirrored cells) and the
        results are cropped back.
        """
        import torch

        h, w = tile.shape
        tile, _ = pad_to_multiple(
            np.asarray(tile, np.float32), 32, MIN_INPUT, fill=float(np.median(tile)) if tile.size else 0.0
        )
        data = torch.from_numpy(np.ascontiguousarray(tile, np.float32))[None]
        if self.in_channels == 3:
            data = data.expand(3, -1, -1).contiguous()
        if self.backend == "torch":
            masks, scores, labels = self.module.predict(data.to(self.device), score_floor, max_detections)
        else:
            masks, scores, labels = self._predict_mmdet(data, score_floor, max_detections)
        masks = masks.cpu().numpy().astype(bool)[:, :h, :w] if len(scores) else np.zeros((0, h, w), bool)
        scores = scores.cpu().numpy().astype(np.float32)
        labels = labels.cpu().numpy().astype(np.int64)
        order = np.argsort(-scores, kind="stable")
        return masks[order], scores[order], labels[order]

    def _predict_mmdet(self, data, score_floor: float, max_detections: int):
        import torch
        from mmdet.structures import DetDataSample

        ph, pw = data.shape[-2:]
        sample = DetDataSample(
            metainfo=dict(img_shape=(ph, pw), ori_shape=(ph, pw), scale_factor=(1.0, 1.0), pad_shape=(ph, pw))
        )
        model = self.module
        rcnn_cfg = model.roi_head.test_cfg
        rcnn_cfg.score_thr = float(score_floor)
        rcnn_cfg.max_per_img = int(max_detections)
        with torch.no_grad():
            batch = model.data_preprocessor({"inputs": [data], "data_samples": [sample]}, False)
            result = model.predict(batch["inputs"], batch["data_samples"], rescale=True)[0]
        inst = result.pred_instances
        return inst.masks, inst.scores, inst.labels


def new_detector(preset: str = "lite", device: str = "cpu") -> Detector:
    """A preset with random weights (training start, tests, benchmark)."""
    cfg = stock_config() if preset == "stock" else load_config(preset)
    meta = {
        "task": "instances",
        "architecture": ARCHITECTURE.get(preset, "cascade-mask-rcnn-r50"),
        "preset": preset,
        **config_to_json(cfg),
    }
    module = build_detector(cfg.model, device)
    module.eval()
    return Detector(module, tuple(cfg.classes), int(cfg.in_channels), int(cfg.train_size), meta, device)


def _build_module(model_cfg: dict, backend: str, device: str):
    """(network of ``model_cfg`` with random weights, the backend that built it). ``"auto"`` falls back
    to mmdet for a config the torch backend does not implement, when mmdet is importable."""
    chosen = require_backend(backend)
    if chosen == "torch":
        import torch

        from .portable import CascadeMaskRCNN, UnsupportedConfig

        try:
            return CascadeMaskRCNN(model_cfg).to(torch.device(device)).eval(), "torch"
        except UnsupportedConfig:
            if backend != "auto" or not mmdet_available():
                raise
    return build_detector(model_cfg, device).eval(), "mmdet"


def _load_into(module, state: dict, where, meta: dict) -> None:
    """Load ``state`` strictly, or say which keys/shapes differ from the architecture in ``meta``."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:

        def few(keys):
            return ", ".join(keys[:3]) + (" …" if len(keys) > 3 else "")

        raise ValueError(
            f"{where}: weights do not match the architecture in its metadata "
            f"({meta.get('architecture')}): {len(missing)} missing ({few(missing)}), "
            f"{len(unexpected)} unexpected ({few(unexpected)}), {len(wrong)} of another shape ({few(wrong)})"
        )
    module.load_state_dict(state, strict=True)  # fp16 storage is copied into the fp32 parameters


def detector_from_weights(path, meta: dict, device: str = "cpu", backend: str = "auto") -> Detector:
    """Rebuild the architecture described in ``meta`` and load the state dict in ``path``."""
    from ..registry import load_state_dict

    if meta.get("task") != "instances":
        raise ValueError(f"{path} holds a {meta.get('task') or 'unknown'} model, not an instances model")
    classes = tuple(meta.get("classes") or ())
    if classes != CLASSES:
        raise ValueError(f"{path} predicts classes {list(classes)}; this segmenter needs {list(CLASSES)}")
    if "model" not in meta:
        preset = meta.get("preset")
        if preset not in PRESETS:
            raise ValueError(f"{path} describes neither its model config nor a known preset")
        meta = {**meta, **config_to_json(load_config(preset))}
    module, chosen = _build_module(meta["model"], backend, device)
    _load_into(module, load_state_dict(path), path, meta)
    in_channels, train_size = int(meta.get("in_channels", 1)), int(meta.get("train_size", 512))
    return Detector(module, classes, in_channels, train_size, meta, device, chosen)


def on_backend(detector: Detector, backend: str) -> Detector:
    """The same detector (same weights) run by ``backend``; the detector itself when it already runs
    there, or for ``"auto"`` when it runs on mmdet a config the torch backend does not implement."""
    from .portable import UnsupportedConfig

    target = "torch" if backend == "auto" else backend
    if target == detector.backend or detector.module is None:
        return detector
    try:
        module, chosen = _build_module(detector.meta["model"], target, detector.device)
    except UnsupportedConfig:
        if backend != "auto":
            raise
        return detector
    _load_into(module, detector.module.state_dict(), detector.meta.get("name") or "detector", detector.meta)
    return replace(detector, module=module, backend=chosen)


def load_detector(model="default", device: str = "cpu", backend: str = "auto") -> Detector:
    """A registered name / ``"default"``, a safetensors file, or a preset name (``"lite"``/``"full"``
    with random weights, for testing only) → :class:`Detector`.

    ``backend``: ``"auto"`` (torch + torchvision, or mmdet for a config only mmdet implements),
    ``"torch"`` or ``"mmdet"``. An already built :class:`Detector` is returned as it is, unless another
    backend is asked for explicitly (then the same weights move to it)."""
    from ..registry import resolve

    if isinstance(model, Detector):
        return model if backend == "auto" else on_backend(model, backend)
    require_backend(backend)
    if isinstance(model, str) and model.startswith("preset:"):
        return on_backend(new_detector(model.split(":", 1)[1], device), backend)
    path, card = resolve(model, task="instances")
    kind_of(card)  # a kind of the table, or an error naming the file and its "architecture"
    return detector_from_weights(path, card.metadata, device, backend)


def prepare_gray(image, name: str = "image") -> np.ndarray:
    """Any 2-D gray / H×W×3(4) color image, 8/16-bit or float → float32 gray in 0–255 (what the
    networks were trained on). Color is reduced to luminance: the models are trained on gray fields."""
    from ..imaging import to_unit_float

    check_image(image, name=name)
    array = np.asarray(image)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    gray = to_gray(array) if array.ndim == 3 else array
    # to_gray returns float32 in the source's integer range: scale it by the source dtype's range.
    gray = to_unit_float(gray, dtype=array.dtype, name=name)
    return (gray * 255.0).astype(np.float32)
