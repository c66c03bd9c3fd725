"""Typed model cards: what a weights file says about its model, validated when the file is read.

A card is built from the JSON metadata in a safetensors header (:func:`card_from_metadata`) and holds
the task, the model kind (its architecture), the classes, the input the model expects (channels, color,
the pixel size it was trained at, how images are normalized), and the training data and validation
figures in one shape. Bad metadata raises :class:`CardError` naming the file and the key.

Files written before the cards existed describe the same facts in older shapes; they are read into the
same card, so the shipped files need no rewrite (their sha256 stays the same):

* "which images validated this model" was ``validation_images`` (semantic), ``training.val_images``
  (instances, per dataset) or absent (classifiers, cross-validated) — now ``card.validation.images``;
* the figures were ``validation`` (+ ``validation_score``) — now ``card.validation.figures``;
* the training data was ``training_data``/``training_images`` (semantic), ``training.datasets``/
  ``training.train_images`` (instances) or ``training.dataset`` (classifiers) — now ``card.training``;
* input channels were ``in_channels`` (segmenters) or ``input.channels`` (classifiers) — now ``card.input``.

:meth:`ModelCard.to_metadata` writes the card in the current shape (the registry stores it for hosted
files, which are not local to read).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

COLORS = ("gray", "rgb")
#: How an image becomes network input, by ``normalization.kind``: the parameters each kind accepts.
NORMALIZATIONS = {
    "percentile": ("low", "high"),  # the image's low/high percentiles of luminance → 0/1 (clipped at 1.5)
    "channel-percentile": ("low", "high"),  # the same per RGB channel
    "unit": ("scale",),  # the dtype's range → [0, 1] (times ``scale``), as imaging.to_unit_float
}


#: The normalization of files that do not record one: what each task's inference has always applied.
UNRECORDED_NORMALIZATION = {
    "semantic": {"kind": "percentile", "low": 1.0, "high": 99.5},
    "instances": {"kind": "unit", "scale": 255.0},  # gray in 0–255 (instances.model.prepare_gray)
    "classifier": {"kind": "unit", "scale": 1.0},  # [0, 1], standardized per crop inside the network
    "grading": {"kind": "unit", "scale": 1.0},
}


class CardError(ValueError):
    """A weights file's metadata that does not describe a usable model; names the file and the key."""


@dataclass(frozen=True)
class ModelInput:
    channels: int  # what the network takes: 1 (gray) or 3 (RGB)
    color: str  # "gray" or "rgb": the images it was trained on
    pixel_size_um: float | None  # µm per pixel of the training images; None = not recorded (older files)
    normalization: dict  # {"kind": ..., parameters}, see NORMALIZATIONS
    size: int | None = None  # side of the square crops it takes (classifiers); None = any size
    # median area (px²) of the nuclei it segments on its training fields: the size model's reference
    # (napari_cervix.scale); None = not recorded
    nucleus_area_px: float | None = None


@dataclass(frozen=True)
class TrainingRecord:
    data: tuple[str, ...] = ()  # dataset specs (or descriptions) it was trained on
    images: tuple[str, ...] = ()  # names of the training images, where recorded
    details: dict = field(default_factory=dict)  # recipe, steps, seed, device …


@dataclass(frozen=True)
class ValidationRecord:
    images: tuple[str, ...] = ()  # names of the images that validated it; empty for cross-validation
    figures: dict = field(default_factory=dict)  # the measured figures, as the trainer reported them


@dataclass(frozen=True)
class ModelCard:
    task: str
    kind: str  # the model kind (architecture); see napari_cervix.kinds.KINDS
    classes: tuple[str, ...]
    input: ModelInput
    training: TrainingRecord
    validation: ValidationRecord
    name: str | None = None
    description: str = ""
    # The whole header as read: kind-specific settings (an mmdet config, layer sizes) live here.
    metadata: dict = field(default_factory=dict, repr=False, compare=False)
    source: str = field(default="metadata", repr=False, compare=False)  # the file it was read from, for errors

    def error(self, key: str, problem: str) -> CardError:
        """An error about one of this card's metadata keys, naming the file it came from."""
        return CardError(f"{self.source}: metadata key {key!r}: {problem}")

    def to_metadata(self) -> dict:
        """The card as JSON-safe metadata in the current shape (kind-specific settings kept)."""
        meta = {k: v for k, v in self.metadata.items() if k not in _LEGACY_KEYS}
        meta.update(
            task=self.task,
            architecture=self.kind,
            classes=list(self.classes),
            input={**meta.get("input", {}), **_drop_none(dataclasses.asdict(self.input))},
            training={
                **self.training.details,
                "data": list(self.training.data),
                "images": list(self.training.images),
            },
            validation={"images": list(self.validation.images), "figures": self.validation.figures},
        )
        if self.name:
            meta["name"] = self.name
        if self.description:
            meta["description"] = self.description
        meta.update(self._own_fields())
        return meta

    def _own_fields(self) -> dict:
        return {}


@dataclass(frozen=True)
class SemanticCard(ModelCard):
    options: dict = field(default_factory=dict)  # constructor options of the kind (e.g. encoder depth)
    divisor: int = 32  # tiles are padded to a multiple of this

    def _own_fields(self) -> dict:
        return {"arch_options": self.options, "divisor": self.divisor}


@dataclass(frozen=True)
class InstancesCard(ModelCard):
    preset: str | None = None  # "lite" / "full" (configs/), when built from one
    config: dict = field(default_factory=dict, repr=False)  # the mmdet model config; empty: the preset's
    train_size: int = 512

    def _own_fields(self) -> dict:
        own = {"preset": self.preset, "train_size": self.train_size, "in_channels": self.input.channels}
        if self.config:
            own["model"] = self.config
        return own


@dataclass(frozen=True)
class ClassifierCard(ModelCard):
    abnormal_classes: tuple[str, ...] = ()  # the "reviewable" ones
    threshold: float = 0.5  # P(reviewable) at or above which a cell is flagged
    tta: int = 8  # test-time flips/rotations averaged
    model_config: dict = field(default_factory=dict)  # layer sizes and kind-specific settings
    mask_source: str | None = None  # where its nucleus/cytoplasm masks came from in training ("otsu")

    def _own_fields(self) -> dict:
        return {
            "abnormal_classes": list(self.abnormal_classes),
            "threshold": self.threshold,
            "model_config": self.model_config,
            "mask_source": self.mask_source,
            "input": {**self.metadata.get("input", {}), **_drop_none(dataclasses.asdict(self.input)), "tta": self.tta},
        }


CARD_TYPES: dict[str, type[ModelCard]] = {
    "semantic": SemanticCard,
    "instances": InstancesCard,
    "classifier": ClassifierCard,
    "grading": ClassifierCard,  # Bethesda grading: a cell classifier of its own task, so it has its own default
}
# Keys of older files that the card reads into its own fields (and does not write again).
_LEGACY_KEYS = (
    "in_channels",
    "normalization",
    "validation_images",
    "validation_score",
    "training_data",
    "training_images",
)


def card_from_metadata(meta: dict, source: str = "metadata", *, name: str | None = None) -> ModelCard:
    """The card a weights file's metadata describes; :class:`CardError` naming ``source`` and the key."""
    reader = _Reader(meta, source)
    task = reader.choice("task", tuple(CARD_TYPES))
    kind = reader.text("architecture")  # checked against the table of kinds when the model is loaded
    classes = reader.names("classes")
    common = dict(
        task=task,
        kind=kind,
        classes=classes,
        input=_input(reader, task),
        training=_training(reader, task),
        validation=_validation(reader, task),
        name=name or meta.get("name"),
        description=str(meta.get("description") or ""),
        metadata=dict(meta),
        source=source,
    )
    if task == "semantic":
        return SemanticCard(
            **common,
            options=reader.mapping("arch_options", {}),
            divisor=reader.integer("divisor", 32, minimum=1),
        )
    if task == "instances":
        return InstancesCard(
            **common,
            preset=meta.get("preset"),
            config=reader.mapping("model", {}),
            train_size=reader.integer("train_size", 512, minimum=1),
        )
    if common["input"].size is None:
        raise reader.error("input", "a classifier's input must give its crop side ('size')")
    abnormal = reader.names("abnormal_classes", allow_empty=True)
    stray = sorted(set(abnormal) - set(classes))
    if stray:
        raise reader.error("abnormal_classes", f"{stray} are not among the classes {list(classes)}")
    threshold = reader.number("threshold", 0.5)
    if not 0.0 <= threshold <= 1.0:
        raise reader.error("threshold", f"must be a probability in [0, 1], got {threshold}")
    return ClassifierCard(
        **common,
        abnormal_classes=abnormal,
        threshold=threshold,
        tta=_Reader(reader.mapping("input", {}), source, "input.").integer("tta", 8, minimum=1),
        model_config=reader.mapping("model_config", {}),
        mask_source=meta.get("mask_source"),
    )


def _input(reader: _Reader, task: str) -> ModelInput:
    meta = reader.meta
    given = _Reader(reader.mapping("input", {}), reader.source, "input.")
    # Older segmenter files give a top-level in_channels.
    where, key = (given, "channels") if "channels" in given.meta else (reader, "in_channels")
    channels = where.integer(key, 1, minimum=1)
    if channels not in (1, 3):
        raise where.error(key, f"must be 1 (gray) or 3 (RGB), got {channels}")
    color = given.meta.get("color") or ("gray" if channels == 1 else "rgb")
    if color not in COLORS:
        raise given.error("color", f"must be one of {COLORS}, got {color!r}")
    pixel_size = given.meta.get("pixel_size_um")
    if pixel_size is not None and (not isinstance(pixel_size, (int, float)) or pixel_size <= 0):
        raise given.error("pixel_size_um", f"must be a positive number of µm or null, got {pixel_size!r}")
    if "normalization" in given.meta:
        normalization = given.mapping("normalization", {})
        where = given
    elif "normalization" in meta:  # older semantic files: top level, with "gray": true for luminance input
        normalization = {k: v for k, v in reader.mapping("normalization", {}).items() if k != "gray"}
        where = reader
    else:  # not recorded: what inference has always done for the task
        normalization = dict(UNRECORDED_NORMALIZATION[task])
        where = reader
    kind = normalization.get("kind")
    if kind not in NORMALIZATIONS:
        raise where.error("normalization", f"kind must be one of {sorted(NORMALIZATIONS)}, got {kind!r}")
    unknown = sorted(set(normalization) - {"kind", *NORMALIZATIONS[kind]})
    if unknown:
        raise where.error("normalization", f"{kind} normalization takes {NORMALIZATIONS[kind]}, not {unknown}")
    parameters = {k: v for k, v in normalization.items() if k != "kind"}
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in parameters.values()):
        raise where.error("normalization", f"parameters must be numbers, got {parameters}")
    if "low" in parameters and not 0 <= parameters["low"] < parameters.get("high", 100) <= 100:
        raise where.error("normalization", f"percentiles need 0 ≤ low < high ≤ 100, got {parameters}")
    size = given.meta.get("size")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise given.error("size", f"must be a positive number of pixels, got {size!r}")
    area = given.meta.get("nucleus_area_px")
    if area is not None and (isinstance(area, bool) or not isinstance(area, (int, float)) or area <= 0):
        raise given.error("nucleus_area_px", f"must be a positive area in px² or null, got {area!r}")
    pixel = None if pixel_size is None else float(pixel_size)
    return ModelInput(channels, color, pixel, normalization, size, None if area is None else float(area))


def _training(reader: _Reader, task: str) -> TrainingRecord:
    meta = reader.meta
    training = reader.mapping("training", {})
    if "data" in training:  # the current shape
        details = {k: v for k, v in training.items() if k not in ("data", "images")}
        return TrainingRecord(_strings(training["data"]), _strings(training.get("images", ())), details)
    if task == "semantic":
        return TrainingRecord(
            _strings(meta.get("training_data", ())), _strings(meta.get("training_images", ())), training
        )
    if task == "instances":
        details = {k: v for k, v in training.items() if k not in ("datasets", "train_images", "val_images")}
        return TrainingRecord(
            _strings(training.get("datasets", ())), _names_of_datasets(training.get("train_images")), details
        )
    details = {k: v for k, v in training.items() if k != "dataset"}
    return TrainingRecord(_strings([training["dataset"]] if "dataset" in training else ()), (), details)


def _validation(reader: _Reader, task: str) -> ValidationRecord:
    meta = reader.meta
    validation = reader.mapping("validation", {})
    if "figures" in validation:  # the current shape
        return ValidationRecord(_strings(validation.get("images", ())), dict(validation["figures"]))
    if task == "semantic":
        figures = dict(validation)
        if "validation_score" in meta:
            figures["score"] = meta["validation_score"]
        return ValidationRecord(_strings(meta.get("validation_images", ())), figures)
    if task == "instances":
        images = _names_of_datasets(reader.mapping("training", {}).get("val_images"))
        return ValidationRecord(images, validation)
    return ValidationRecord((), validation)


def _names_of_datasets(by_dataset) -> tuple[str, ...]:
    """Image names listed per dataset spec ({spec: [names]}) → one sorted list of names."""
    if not by_dataset:
        return ()
    return tuple(sorted({str(name) for names in dict(by_dataset).values() for name in names}))


def _strings(values) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def _drop_none(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if v is not None or k == "pixel_size_um"}


class _Reader:
    """Typed access to one level of metadata, with errors that name the file and the full key."""

    def __init__(self, meta, source: str, prefix: str = ""):
        if not isinstance(meta, dict):
            raise CardError(f"{source}: metadata {prefix.rstrip('.') or ''} must be a JSON object, got {meta!r}")
        self.meta, self.source, self.prefix = meta, source, prefix

    def error(self, key: str, problem: str) -> CardError:
        return CardError(f"{self.source}: metadata key {self.prefix + key!r}: {problem}")

    def _get(self, key, default):
        if key not in self.meta:
            if default is _REQUIRED:
                raise self.error(key, "missing")
            return default
        return self.meta[key]

    def text(self, key: str) -> str:
        value = self._get(key, _REQUIRED)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self._get(key, _REQUIRED)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def names(self, key: str, *, allow_empty: bool = False) -> tuple[str, ...]:
        value = self._get(key, [] if allow_empty else _REQUIRED)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"must be a list of names, got {value!r}")
        if not value and not allow_empty:
            raise self.error(key, "must name at least one class")
        if len(set(value)) != len(value):
            raise self.error(key, f"names a class twice: {value}")
        return tuple(value)

    def integer(self, key: str, default: int, *, minimum: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"must be an integer ≥ {minimum}, got {value!r}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be a number, got {value!r}")
        return float(value)

    def mapping(self, key: str, default: dict) -> dict:
        value = self._get(key, default)
        if not isinstance(value, dict):
            raise self.error(key, f"must be a JSON object, got {value!r}")
        return value


_REQUIRED = object()
