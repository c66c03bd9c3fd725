"""One model registry for every task: name → architecture + weights file + sha256 + metadata.

Entries live in ``weights/registry.json`` next to the shipped weights. An entry's weights are either a
file shipped in the package (``file``) or hosted (``url``); hosted files are fetched once with pooch into
a cache folder (``$NAPARI_CERVIX_CACHE``, default the OS cache dir) and checked against ``sha256``.
Weights are safetensors: loading never unpickles objects. Each safetensors file carries its own JSON
metadata (architecture, classes, input channels, normalization, training data, validation metrics)
under the ``napari_cervix`` header key, so a user's checkpoint file is self-describing too.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

WEIGHTS_PACKAGE = "napari_cervix.weights"
REGISTRY_FILE = "registry.json"
METADATA_KEY = "napari_cervix"
CACHE_ENV = "NAPARI_CERVIX_CACHE"


class RegistryError(ValueError):
    """A model name, file or hash that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str  # "semantic" | "instances" | "classifier"
    architecture: str
    sha256: str
    file: str | None = None  # shipped inside the package (weights/)
    url: str | None = None  # hosted; fetched into the cache folder
    default: bool = False
    description: str = ""
    metadata: dict = field(default_factory=dict)
    # Kinds of input this model is the default for (classifiers: "gray", "rgb"): a classifier must be the
    # one trained for the input it meets, so "default" picks by the image's color when the caller knows it.
    default_for: tuple[str, ...] = ()


def weights_dir() -> Path:
    return Path(str(resources.files(WEIGHTS_PACKAGE)))


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("napari-cervix"))


def load_registry(path: str | Path | None = None) -> dict[str, ModelEntry]:
    path = Path(path) if path else weights_dir() / REGISTRY_FILE
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    entries = {}
    for item in raw["models"]:
        item = dict(item)
        item["default_for"] = tuple(item.get("default_for", ()))
        entries[item["name"]] = ModelEntry(**item)
    return entries


def list_models(task: str | None = None) -> list[ModelEntry]:
    return [e for e in load_registry().values() if task is None or e.task == task]


def default_model(task: str, input_kind: str | None = None) -> ModelEntry:
    """The task's default model; with ``input_kind`` (e.g. "gray"/"rgb") the one registered for that input."""
    entries = list_models(task)
    if input_kind is not None:
        for entry in entries:
            if input_kind in entry.default_for:
                return entry
    for entry in entries:
        if entry.default:
            return entry
    if entries:
        return entries[0]
    raise RegistryError(f"no model registered for task {task!r}")


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


def resolve(model: str | os.PathLike | None, task: str, input_kind: str | None = None) -> tuple[Path, dict]:
    """A registered name, ``None``/"default", or a path to a safetensors file → (path, metadata).

    The metadata's ``task`` must match: a classifier file given to the segmenter is refused clearly.
    ``input_kind`` only matters for "default" (see :func:`default_model`).
    """
    if model is None or model == "default":
        entry = default_model(task, input_kind)
        path = fetch_weights(entry)
    else:
        registry = load_registry()
        if str(model) in registry:
            entry = registry[str(model)]
            if entry.task != task:
                raise RegistryError(f"model {entry.name!r} is a {entry.task} model, not {task}")
            path = fetch_weights(entry)
        else:
            path = Path(model).expanduser()
            if not path.exists():
                known = ", ".join(e.name for e in list_models(task)) or "none"
                raise RegistryError(f"{model!r} is neither a registered {task} model ({known}) nor an existing file")
    meta = read_metadata(path)
    if meta.get("task") != task:
        raise RegistryError(f"{path} holds a {meta.get('task') or 'unknown'} model, not a {task} model")
    return path, meta


def read_metadata(path: str | Path) -> dict:
    """The JSON metadata stored in a safetensors header; clear error for anything else."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            header = fh.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for non-safetensors files
        raise RegistryError(f"{path} is not a safetensors weights file: {err}") from err
    if METADATA_KEY not in header:
        raise RegistryError(f"{path} has no napari-cervix metadata (key {METADATA_KEY!r} missing from its header)")
    return json.loads(header[METADATA_KEY])


def save_weights(state_dict: dict, path: str | Path, metadata: dict) -> str:
    """Write a torch state dict + metadata as safetensors; returns the file's sha256."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(metadata)})
    os.chmod(tmp, 0o644)  # safetensors creates 0600 files; shipped weights must be readable by all users
    os.replace(tmp, path)  # never leave a half-written weights file under the real name
    return sha256_of(path)


def load_state_dict(path: str | Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def ship_weights(
    source: str | Path,
    name: str,
    *,
    default: bool = False,
    description: str = "",
    summary: dict | None = None,
    default_for: tuple[str, ...] = (),
) -> ModelEntry:
    """Copy a trained weights file into the package and (re)register it under ``name``.

    Task and architecture come from the file's own metadata; ``default`` makes it the task's default
    (clearing the flag on the others of that task), ``default_for`` the default for those input kinds
    (taken from the others). The registry file is rewritten atomically.
    """
    import shutil

    meta = read_metadata(source)
    target = weights_dir() / f"{name}.safetensors"
    if Path(source).resolve() != target.resolve():
        shutil.copyfile(source, target)
    entry = ModelEntry(
        name=name,
        task=meta["task"],
        architecture=meta["architecture"],
        sha256=sha256_of(target),
        file=target.name,
        default=default,
        description=description,
        metadata=summary or {},
        default_for=tuple(default_for),
    )
    path = weights_dir() / REGISTRY_FILE
    raw = json.loads(path.read_text()) if path.exists() else {"models": []}
    models = [m for m in raw["models"] if m["name"] != name]
    for m in models:
        if m["task"] != entry.task:
            continue
        if default:
            m["default"] = False
        kinds = [k for k in m.get("default_for", ()) if k not in entry.default_for]
        if kinds:
            m["default_for"] = kinds
        else:
            m.pop("default_for", None)
    record = dict(entry.__dict__)
    if record["default_for"]:
        record["default_for"] = list(record["default_for"])
    else:
        del record["default_for"]
    models.append(record)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"models": models}, indent=2) + "\n")
    os.replace(tmp, path)
    return entry
