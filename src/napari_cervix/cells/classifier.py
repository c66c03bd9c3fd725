"""A trained cell classifier: network (+ fusion head or trees), its classes, input recipe and decision threshold.

:class:`CellClassifier` is what every caller uses (classify_cells, the CLI, the widget, CV). It is saved
as one safetensors file — the CNN's state dict, the feature-fusion arrays under ``fusion.*``, the
descriptor_boost trees under ``boost.*`` — with JSON
metadata (registry task ``"classifier"``) holding everything needed to rebuild and use it: architecture,
layer sizes, output classes, which of them are abnormal ("reviewable"), input size/channels, the binary
threshold chosen on validation folds, and the cross-validated figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..kinds import cell_kind, kind_of
from .descriptors import onehot_to_semantic  # noqa: F401  (importable from here, as before)


def abnormal_probability(proba: np.ndarray, abnormal_mask: np.ndarray) -> np.ndarray:
    """P(reviewable) = total probability of the abnormal classes."""
    return np.asarray(proba)[:, np.asarray(abnormal_mask, bool)].sum(axis=1)


class CellClassifier:
    def __init__(
        self,
        arch: str,
        network,
        classes: list[str],
        abnormal_classes: list[str],
        *,
        size: int = 96,
        channels: int = 1,
        tta: int = 8,
        threshold: float = 0.5,
        fusion_head=None,
        model_config: dict | None = None,
        mask_source: str | None = None,
        metadata: dict | None = None,
        boost=None,
    ):
        self.kind = cell_kind(arch)  # a ValueError naming the known kinds
        self.arch = arch
        self.network = network
        self.classes = list(classes)
        self.abnormal_classes = [c for c in abnormal_classes if c in self.classes]
        self.size = int(size)
        self.channels = int(channels)
        self.tta = int(tta)
        self.threshold = float(threshold)
        self.fusion_head = fusion_head
        self.boost = boost  # descriptor_boost: the fitted trees (boosting.BoostedTrees)
        self.model_config = dict(model_config or {})
        self.mask_source = mask_source
        self.metadata = dict(metadata or {})

    @property
    def abnormal_mask(self) -> np.ndarray:
        return np.array([c in self.abnormal_classes for c in self.classes])

    @property
    def needs_masks(self) -> bool:
        return self.kind.needs_masks

    @property
    def uses_given_nuclei(self) -> bool:
        """Whether known nuclei may replace the mask source it was trained with (see the kind)."""
        return self.kind.uses_given_nuclei

    @property
    def network_size(self) -> int:
        """Side of the CNN's input; smaller than :attr:`size` when descriptors want a finer crop."""
        return int(self.model_config.get("network_size") or self.size)

    @property
    def network_channels(self) -> int:
        """Channels of the CNN's input: 1 for a gray CNN beside color descriptors, else :attr:`channels`."""
        return int(self.model_config.get("network_channels") or self.channels)

    # --------------------------------------------------------------------------------- inference
    def _run(self, fn, crops: np.ndarray, masks: np.ndarray | None, batch_size: int = 256) -> np.ndarray:
        import torch

        from .augment import dihedral

        self.network.eval()
        outputs = []
        views = range(max(1, min(self.tta, 8)))
        with torch.inference_mode():
            for start in range(0, len(crops), batch_size):
                x = network_view(
                    torch.from_numpy(np.ascontiguousarray(crops[start : start + batch_size], np.float32)),
                    self.network_size,
                    self.network_channels,
                )
                m = (
                    None
                    if masks is None
                    else network_view(
                        torch.from_numpy(np.ascontiguousarray(masks[start : start + batch_size], np.float32)),
                        self.network_size,
                    )
                )
                total = None
                for k in views:
                    out = fn(dihedral(x, k), None if m is None else dihedral(m, k))
                    total = out if total is None else total + out
                outputs.append((total / len(views)).float().numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.classes)), np.float32)

    def deep_features(self, crops: np.ndarray) -> np.ndarray:
        """GAP features of the LD/ResNet (averaged over the TTA views)."""
        return self._run(lambda x, m: self.network.features(x), crops, None)

    def predict_proba(self, crops: np.ndarray, masks: np.ndarray | None = None, mask_fn=None) -> np.ndarray:
        """N × classes probabilities for N × C × S × S crops in [0, 1] (C, S = the classifier's input).

        The mask-fusion model needs N × 2 × S × S one-hot masks; when ``masks`` is None they are computed
        from the crops with ``mask_fn`` (default: the Otsu fallback it was trained with).
        """
        crops = np.asarray(crops, np.float32)
        expected = (self.channels, self.size, self.size)
        if crops.ndim != 4 or crops.shape[1:] != expected:
            raise ValueError(f"crops must be N×{expected[0]}×{expected[1]}×{expected[2]}, got {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return self.kind.predict(self, crops, masks, mask_fn)

    def decide(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class index, P(reviewable), reviewable flag) with class and flag consistent (see
        :func:`consistent_predictions`)."""
        p_abnormal = abnormal_probability(proba, self.abnormal_mask)
        if not self.abnormal_mask.any() or self.abnormal_mask.all():
            return proba.argmax(axis=1), p_abnormal, p_abnormal >= self.threshold
        return (
            consistent_predictions(proba, self.abnormal_mask, p_abnormal, self.threshold),
            p_abnormal,
            p_abnormal >= self.threshold,
        )

    # ----------------------------------------------------------------------------------- storage
    def metadata_dict(self, extra: dict | None = None) -> dict:
        meta = dict(self.metadata)
        meta.update(
            {
                "task": self.kind.task,
                "architecture": self.arch,
                "description": self.kind.description,
                "classes": self.classes,
                "abnormal_classes": self.abnormal_classes,
                "threshold": self.threshold,
                "input": {
                    "size": self.size,
                    "channels": self.channels,
                    "color": "gray" if self.channels == 1 else "rgb",
                    "range": "[0, 1], standardized per crop inside the network",
                    "tta": self.tta,
                },
                "model_config": self.model_config,
                "mask_source": self.mask_source,
            }
        )
        if extra:
            meta.update(extra)
        return meta

    def save(self, path: str | Path, extra_metadata: dict | None = None) -> str:
        """Write weights + metadata as safetensors (fp16 weights to keep shipped files small); returns sha256."""
        import torch

        from ..registry import save_weights

        network_state = self.network.state_dict() if self.network is not None else {}
        state = {f"net.{k}": (v.half() if v.is_floating_point() else v) for k, v in network_state.items()}
        if self.fusion_head is not None:
            state.update({k: torch.from_numpy(v) for k, v in self.fusion_head.to_arrays().items()})
        if self.boost is not None:
            state.update({k: torch.from_numpy(v) for k, v in self.boost.to_arrays().items()})
        self.metadata = self.metadata_dict(extra_metadata)
        return save_weights(state, path, self.metadata)


def load_grader(model="default", color: str | None = "rgb") -> CellClassifier:
    """The Bethesda classifier (registry task "grading"): a name, ``"default"``, a file or a loaded one."""
    return load_classifier(model, color, task="grading")


def network_view(x, size: int, channels: int | None = None):
    """B × C × S × S crops as the CNN takes them: luminance if it is a gray network fed color crops
    (``channels`` = 1), resized by area averaging to its input side; unchanged where they already match."""
    import torch
    import torch.nn.functional as F

    from ..imaging import LUMINANCE

    if channels == 1 and x.shape[1] == 3:
        weights = torch.tensor(LUMINANCE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = (x * weights).sum(dim=1, keepdim=True)
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="area")


def consistent_predictions(
    proba: np.ndarray, abnormal_mask: np.ndarray, p_abnormal: np.ndarray, threshold: float
) -> np.ndarray:
    """Class = most probable abnormal class when the cell is flagged reviewable, else most probable normal one.

    Keeps the predicted class and the reviewable flag from contradicting each other.
    """
    abnormal_best = np.where(abnormal_mask[None, :], proba, -1).argmax(axis=1)
    normal_best = np.where(~abnormal_mask[None, :], proba, -1).argmax(axis=1)
    return np.where(p_abnormal >= threshold, abnormal_best, normal_best)


def build_network(arch: str, classes: int, channels: int, model_config: dict):
    """A fresh CNN of a classifier kind (its LD/ResNet, or the mask-fusion net)."""
    return cell_kind(arch).network(classes, channels, model_config)


def load_classifier(model="default", color: str | None = None, task: str = "classifier") -> CellClassifier:
    """A registered classifier name, ``"default"``, a safetensors path, or an already loaded classifier.

    ``color`` ("gray" or "rgb", the image's) picks the default trained for that input when ``model`` is
    "default" (the registry's one default rule). ``task``: "classifier" (Herlev-style classes) or
    "grading" (the Bethesda classifier, see :func:`load_grader`).
    """
    if isinstance(model, CellClassifier):
        return model
    from ..registry import resolve

    path, card = resolve(model, task, color)
    network, parts = kind_of(card).load(path, card)
    return CellClassifier(
        card.kind,
        network,
        list(card.classes),
        list(card.abnormal_classes),
        size=card.input.size,
        channels=card.input.channels,
        tta=card.tta,
        threshold=card.threshold,
        model_config=card.model_config,
        mask_source=card.mask_source,
        metadata={**card.metadata, "name": card.name or Path(path).stem},  # the name reports cite
        **parts,
    )
