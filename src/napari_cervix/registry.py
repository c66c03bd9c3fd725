"""One model registry for every task: name → weights file (shipped or hosted) + sha256 + model card.

Entries live in ``weights/registry.json`` next to the shipped weights. An entry's weights are either a
file shipped in the package (``file``) or hosted (``url``); hosted files are fetched once with pooch into
a cache folder (``$NAPARI_CERVIX_CACHE``, default the OS cache dir) and checked against ``sha256``.
Weights are safetensors: loading never unpickles objects. Each safetensors file carries its own JSON
metadata under the ``napari_cervix`` header key, read as a typed :class:`~napari_cervix.cards.ModelCard`
(task, kind, classes, input, training, validation), so a user's checkpoint file is self-describing too.
The registry never repeats what a file's header holds: a shipped entry's card is read from its file; a
hosted entry stores the card its file had when ``scripts/ship_weights.py`` registered it.

**The default rule** (one for the widgets, the console and the CLI): "default" means the entry of the
task listed as the default for the image's color (``default_for``: "gray", "rgb"), see
:func:`default_model`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .cards import COLORS, ModelCard, card_from_metadata

WEIGHTS_PACKAGE = "napari_cervix.weights"
REGISTRY_FILE = "registry.json"
METADATA_KEY = "napari_cervix"
CACHE_ENV = "NAPARI_CERVIX_CACHE"
DEFAULT = "default"


class RegistryError(ValueError):
    """A model name, file or hash that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    sha256: str
    file: str | None = None  # shipped inside the package (weights/)
    url: str | None = None  # hosted; fetched into the cache folder
    description: str = ""
    # Image colors ("gray", "rgb") this model is the task's default for: a model must be the one trained
    # for the input it meets, so the default depends on the image (see default_model).
    default_for: tuple[str, ...] = ()
    hosted_card: dict | None = None  # a hosted file's card metadata, since the file is not local to read

    @property
    def card(self) -> ModelCard:
        if self.file:
            path = weights_dir() / self.file
            if not path.exists():
                raise RegistryError(f"model {self.name!r}: shipped weights {path} are missing from the install")
            return read_card(path, name=self.name)
        if self.hosted_card is None:
            raise RegistryError(f'model {self.name!r}: a hosted entry needs the card of its file ("card")')
        return card_from_metadata(self.hosted_card, f"registry entry {self.name!r}", name=self.name)

    @property
    def task(self) -> str:
        return self.card.task

    @property
    def architecture(self) -> str:
        return self.card.kind

    @property
    def default(self) -> bool:
        """Whether it is its task's default for some image color."""
        return bool(self.default_for)


def weights_dir() -> Path:
    return Path(str(resources.files(WEIGHTS_PACKAGE)))


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("napari-cervix"))


def entry_from_record(record: dict, where: str = REGISTRY_FILE) -> ModelEntry:
    """A registry.json record → :class:`ModelEntry`, refusing unknown keys and colors clearly."""
    known = {"name", "sha256", "file", "url", "description", "default_for", "card"}
    unknown = sorted(set(record) - known)
    name = record.get("name", "?")
    if unknown:
        raise RegistryError(f"{where}: entry {name!r} has unknown keys {unknown}; an entry holds {sorted(known)}")
    colors = tuple(record.get("default_for", ()))
    if not set(colors) <= set(COLORS):
        raise RegistryError(f"{where}: entry {name!r}: default_for must list colors among {COLORS}, got {colors}")
    try:
        return ModelEntry(
            name=record["name"],
            sha256=record["sha256"],
            file=record.get("file"),
            url=record.get("url"),
            description=record.get("description", ""),
            default_for=colors,
            hosted_card=record.get("card"),
        )
    except KeyError as err:
        raise RegistryError(f"{where}: entry {name!r} has no {err.args[0]!r}") from err


def entry_record(entry: ModelEntry) -> dict:
    """The registry.json record of an entry (the inverse of :func:`entry_from_record`)."""
    record = {"name": entry.name, "sha256": entry.sha256}
    record.update({"file": entry.file} if entry.file else {"url": entry.url, "card": entry.hosted_card})
    if entry.description:
        record["description"] = entry.description
    if entry.default_for:
        record["default_for"] = list(entry.default_for)
    return record


def load_registry(path: str | Path | None = None) -> dict[str, ModelEntry]:
    path = Path(path) if path else weights_dir() / REGISTRY_FILE
    if not path.exists():
        return {}
    entries = {}
    for record in json.loads(path.read_text())["models"]:
        entry = entry_from_record(record, str(path))
        entries[entry.name] = entry
    return entries


def list_models(task: str | None = None) -> list[ModelEntry]:
    return [e for e in load_registry().values() if task is None or e.task == task]


def default_model(task: str, color: str | None = None) -> ModelEntry:
    """The task's model for an image of ``color`` ("gray" or "rgb", e.g. ``imaging.color_kind(image)``).

    The one default rule, behind every "default" (widget, console, CLI): the entry whose ``default_for``
    lists that color. Without a color (no image at hand) the default for gray, the smears the plugin
    was built on. Exactly one entry per task and color may claim it.
    """
    color = color or "gray"
    if color not in COLORS:
        raise RegistryError(f"color must be one of {COLORS}, got {color!r}")
    claims = [e for e in list_models(task) if color in e.default_for]
    if len(claims) > 1:
        names = ", ".join(e.name for e in claims)
        raise RegistryError(f"the registry lists {len(claims)} default {task} models for {color} images: {names}")
    if not claims:
        raise RegistryError(f"no {task} model is registered as the default for {color} images")
    return claims[0]


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_weights(entry: ModelEntry) -> Path:
    """Local path of an entry's weights, verified against its sha256 (downloaded once if hosted)."""
    if entry.file:
        path = weights_dir() / entry.file
        if not path.exists():
            raise RegistryError(f"model {entry.name!r}: shipped weights {path} are missing from the install")
        actual = sha256_of(path)
        if actual != entry.sha256:
            raise RegistryError(
                f"model {entry.name!r}: {path} has sha256 {actual}, registry expects {entry.sha256}; "
                "the file is corrupt or was replaced"
            )
        return path
    if entry.url:
        import pooch

        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        fname = f"{entry.name}-{entry.sha256[:12]}.safetensors"
        try:
            return Path(
                pooch.retrieve(
                    entry.url, known_hash=f"sha256:{entry.sha256}", fname=fname, path=folder, progressbar=False
                )
            )
        except ValueError as err:  # pooch raises ValueError on a hash mismatch
            raise RegistryError(f"model {entry.name!r}: download from {entry.url} failed its check: {err}") from err
    raise RegistryError(f"model {entry.name!r} has neither a shipped file nor a URL")


def resolve(model: str | os.PathLike | None, task: str, color: str | None = None) -> tuple[Path, ModelCard]:
    """A registered name, ``None``/"default", or a path to a safetensors file → (path, model card).

    The card's ``task`` must match: a classifier file given to the segmenter is refused clearly.
    ``color`` (the image's, "gray"/"rgb") only matters for "default" (see :func:`default_model`).
    """
    name = None
    if model is None or model == DEFAULT:
        entry = default_model(task, color)
        path, name = fetch_weights(entry), entry.name
    else:
        registry = load_registry()
        if str(model) in registry:
            entry = registry[str(model)]
            path, name = fetch_weights(entry), entry.name
        else:
            path = Path(model).expanduser()
            if not path.exists():
                known = ", ".join(e.name for e in list_models(task)) or "none"
                raise RegistryError(f"{model!r} is neither a registered {task} model ({known}) nor an existing file")
    # The task first: a file of another task is refused as such, before its card is checked in full.
    found = _header_of(str(path), _stamp(path)).get("task") or "unknown"
    if found != task:
        what = f"model {name!r}" if name else str(path)
        raise RegistryError(f"{what} is {_a(found)} model, not {_a(task)} model")
    return path, read_card(path, name=name)


def _a(task: str) -> str:
    return f"an {task}" if task[0] in "aeiou" else f"a {task}"


def _read_header(path: str | Path) -> dict:
    """The JSON metadata stored in a safetensors header; clear error for anything else."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            header = fh.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for non-safetensors files
        raise RegistryError(f"{path} is not a safetensors weights file: {err}") from err
    if METADATA_KEY not in header:
        raise RegistryError(f"{path} has no napari-cervix metadata (key {METADATA_KEY!r} missing from its header)")
    try:
        return json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise RegistryError(f"{path}: its {METADATA_KEY!r} metadata is not JSON: {err}") from err


def _stamp(path) -> tuple[int, int]:
    """(mtime, size): keys the caches below, so a rewritten file is read again."""
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=128)
def _header_of(path: str, stamp: tuple[int, int]) -> dict:
    return _read_header(path)


@functools.lru_cache(maxsize=128)
def _card_of(path: str, stamp: tuple[int, int], name: str | None) -> ModelCard:
    return card_from_metadata(_header_of(path, stamp), path, name=name)


def read_card(path: str | Path, name: str | None = None) -> ModelCard:
    """The validated model card of a weights file (:class:`~napari_cervix.cards.CardError` names file and key)."""
    return _card_of(str(path), _stamp(path), name)


def read_metadata(path: str | Path) -> dict:
    """The JSON metadata of a weights file as written, after checking it describes a valid model card."""
    return copy.deepcopy(read_card(path).metadata)  # a copy: the card is cached


def save_weights(state_dict: dict, path: str | Path, metadata: dict) -> str:
    """Write a torch state dict + metadata as safetensors; returns the file's sha256."""
    from safetensors.torch import save_file

    from .io._atomic import atomic_path

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    path = Path(path)
    with atomic_path(path) as tmp:  # never leave a half-written weights file under the real name
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(metadata)})
        os.chmod(tmp, 0o644)  # safetensors creates 0600 files; shipped weights must be readable by all users
    return sha256_of(path)


def load_state_dict(path: str | Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))
