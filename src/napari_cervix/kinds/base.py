"""What every model kind provides, per task; the table of kinds is :data:`napari_cervix.kinds.KINDS`.

A kind is one small class: its ``name`` (what a weights file's card gives as its ``architecture``), its
``task``, one line of ``description``, and for semantic and classifier kinds **build** (a fresh model of a
card's shape), **load** (a weights file's model, ready to use) and **predict**; classifier kinds also **fit**
the parts they add on top of their CNN. Semantic networks are trained by ``semantic.train``, which builds
them through the kind (a kind calling that trainer back would make an import circle). Instance kinds name
the mmdet presets (see :class:`InstancesKind`). Kind modules import torch or scikit-learn only inside their
methods, so the table — read by the CLI's ``--help`` and the loaders — stays light.
"""

from __future__ import annotations

import numpy as np


class ModelKind:
    name: str
    task: str
    description: str

    def __repr__(self) -> str:
        return f"<{self.task} kind {self.name!r}>"


class SemanticKind(ModelKind):
    """A network mapping a normalized image (B × C × H × W) to background / cytoplasm / nucleus logits."""

    task = "semantic"

    def network(self, in_channels: int = 1, classes: int = 3, **options):
        """A fresh network; ``options`` are the kind's constructor options (a card's ``arch_options``)."""
        raise NotImplementedError

    def build(self, card):
        return self.network(card.input.channels, len(card.classes), **card.options)

    def load(self, path, card):
        from ..registry import RegistryError, load_state_dict

        try:
            network = self.build(card)
        except (KeyError, ValueError, TypeError) as err:
            raise RegistryError(f"{path}: cannot build the architecture its metadata describes: {err}") from err
        state = {k: v.float() for k, v in load_state_dict(path).items()}
        try:
            network.load_state_dict(state)
        except RuntimeError as err:  # missing/unexpected tensors or shape mismatches
            first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
            raise RegistryError(f"{path}: weights do not fit architecture {self.name!r}: {first}") from err
        return network.eval()

    def predict(self, network, x):
        """Class probabilities (B × classes × H × W) of a batch of normalized tiles."""
        return network(x).float().softmax(1)


class InstancesKind(ModelKind):
    """A preset of the mmdet detector of overlapping cells and their nuclei: its config file in
    ``instances/configs``, which ``instances.model`` reads to build (``new_detector``) and the trainer trains.

    A detector's architecture is the whole mmdet config its card stores, so ``instances.model`` loads any
    file from its card (``load_detector``, after checking the kind here); these kinds only name the presets.
    """

    task = "instances"
    preset: str
    config_file: str


class ClassifierKind(ModelKind):
    """A cell classifier: a CNN on N × C × S × S crops, plus (for some kinds) parts fitted on top of it.

    The CNN is trained by ``cells.training.train_network``; :meth:`fit` fits the kind's own parts on top
    of it and :meth:`predict` turns crops into class probabilities with a
    :class:`~napari_cervix.cells.classifier.CellClassifier` of this kind.
    """

    task = "classifier"
    needs_masks = False  # takes a nucleus/cytoplasm mask per crop
    cnn_takes_masks = False  # the CNN itself has a mask branch (else the masks feed the kind's own parts)
    uses_given_nuclei = True  # known nuclei may replace the mask source it was trained with
    has_network = True  # False: the kind's own parts (trees on descriptors) are the whole model
    recipe: dict = {"epochs": 60}  # the shipped recipe's TrainConfig settings

    def output_space(self) -> tuple[list[str], np.ndarray | None, list[str]]:
        """(output classes, Herlev index → output index map or None, abnormal output classes): the 7
        Herlev classes, unless a kind predicts coarser groups."""
        from ..classes import HERLEV_ABNORMAL, HERLEV_CLASSES

        return list(HERLEV_CLASSES), None, list(HERLEV_ABNORMAL)

    def model_config(self, config) -> dict:
        """Kind-specific settings stored in the card's ``model_config`` besides the CNN's layer sizes."""
        return {}

    def network(self, classes: int, channels: int, model_config: dict):
        """A fresh LD/ResNet (or, for :attr:`cnn_takes_masks`, mask-fusion) CNN."""
        from ..cells.models import LDResNet, MaskFusionNet

        widths = tuple(model_config.get("widths", (32, 64, 128)))
        blocks = int(model_config.get("blocks", 2))
        per_channel = bool(model_config.get("per_channel", True))  # weights saved before the option: per channel
        if self.cnn_takes_masks:
            return MaskFusionNet(channels, classes, widths, blocks=blocks, per_channel=per_channel)
        per_class = int(model_config.get("channels_per_class", 16))
        return LDResNet(channels, classes, widths, blocks, per_class, per_channel=per_channel)

    def build(self, card):
        channels = int(card.model_config.get("network_channels") or card.input.channels)
        return self.network(len(card.classes), channels, card.model_config)

    def load(self, path, card) -> tuple[object, dict]:
        """(CNN with its weights, the kind's own parts by CellClassifier argument name)."""
        from ..registry import load_state_dict

        tensors = load_state_dict(path)
        if not self.has_network:
            return None, self.load_parts(tensors)
        network = self.build(card)
        state = {k[4:]: v.float() if v.is_floating_point() else v for k, v in tensors.items() if k.startswith("net.")}
        network.load_state_dict(state)
        return network.eval(), self.load_parts(tensors)

    def load_parts(self, tensors: dict) -> dict:
        return {}

    def predict(self, classifier, crops: np.ndarray, masks: np.ndarray | None, mask_fn=None) -> np.ndarray:
        """N × classes probabilities of crops (already checked against the classifier's input)."""
        import torch

        return classifier._run(lambda x, m: torch.softmax(classifier.network(x)[0], 1), crops, None)

    def fit(self, config, classifier, crops: np.ndarray, targets: np.ndarray, mask_fn=None, masks=None) -> dict:
        """Fit the kind's own parts on top of ``classifier``'s trained CNN; returns them by argument name.
        ``masks``: the crops' N × 2 × S × S one-hot masks where the caller knows them (else ``mask_fn``'s)."""
        return {}
