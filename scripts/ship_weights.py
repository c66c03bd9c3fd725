"""Register trained weights in the source tree's model registry (``src/napari_cervix/weights/registry.json``).

    python scripts/ship_weights.py runs/sem/best.safetensors unet-x --description "U-Net …" --default-for gray rgb
    python scripts/ship_weights.py runs/big/model.safetensors big-model --url https://host/big.safetensors
    python scripts/ship_weights.py runs/sem/best.safetensors unet-x --float16   # half the file size

The entry is written from the file, never by hand: its card (task, kind, classes, input, training,
validation) is read and validated from the file's header. A shipped file is copied into the weights folder
and its entry holds only name, file, sha256, description and default_for; a hosted file (``--url``, uploaded
by you to that address) is not copied, and its entry also holds the card, since the file is not local to
read. ``--default-for`` makes it its task's default for those image colors, taking them from the entry that
had them (one default per task and color). ``--float16`` stores a shipped file's floating tensors as float16
(half the size; every loader casts them back to float32): trained checkpoints are float32. Run it on a
source checkout, then commit the registry and the file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from napari_cervix.cards import COLORS, card_from_metadata
from napari_cervix.io._atomic import atomic_path
from napari_cervix.registry import (
    REGISTRY_FILE,
    ModelEntry,
    entry_record,
    load_state_dict,
    read_card,
    read_metadata,
    save_weights,
    sha256_of,
)

SOURCE_WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "napari_cervix" / "weights"


def _task_of(record: dict, folder: Path) -> str:
    if record.get("file"):
        return read_card(folder / record["file"]).task
    return card_from_metadata(record["card"], f"registry entry {record['name']!r}").task


def ship(
    source: str | Path,
    name: str,
    *,
    folder: str | Path = SOURCE_WEIGHTS,
    url: str | None = None,
    description: str = "",
    default_for: tuple[str, ...] = (),
    float16: bool = False,
) -> dict:
    """Add (or replace) the entry ``name`` in ``folder``'s registry from the weights file ``source``;
    returns the entry's record."""
    folder = Path(folder)
    unknown = sorted(set(default_for) - set(COLORS))
    if unknown:
        raise ValueError(f"--default-for takes image colors {COLORS}, not {unknown}")
    card = read_card(source)  # validates the header, naming the bad key
    if url and float16:
        raise ValueError("--float16 converts a shipped file; for a hosted one, upload the converted file itself")
    if url:
        entry = ModelEntry(
            name,
            sha256_of(source),
            url=url,
            description=description,
            default_for=tuple(default_for),
            hosted_card=card.to_metadata(),
        )
    else:
        target = folder / f"{name}.safetensors"
        if float16:
            state = load_state_dict(source)
            halved = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
            save_weights(halved, target, read_metadata(source))
        elif Path(source).resolve() != target.resolve():
            shutil.copyfile(source, target)
        entry = ModelEntry(
            name, sha256_of(target), file=target.name, description=description, default_for=tuple(default_for)
        )
    path = folder / REGISTRY_FILE
    records = json.loads(path.read_text())["models"] if path.exists() else []
    records = [r for r in records if r["name"] != name]
    for record in records:
        if record.get("default_for") and _task_of(record, folder) == card.task:
            kept = [c for c in record["default_for"] if c not in entry.default_for]
            if kept:
                record["default_for"] = kept
            else:
                del record["default_for"]
    records.append(entry_record(entry))
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"models": records}, indent=2, ensure_ascii=False) + "\n")
    return entry_record(entry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="trained .safetensors file")
    parser.add_argument("name", help="registry name, e.g. unet-resnet34")
    parser.add_argument("--url", help="where the file is hosted (it is then not copied into the package)")
    parser.add_argument("--description", default="", help="one line for the model pickers and the README")
    parser.add_argument("--default-for", nargs="+", default=(), choices=COLORS, help="image colors it is default for")
    parser.add_argument("--float16", action="store_true", help="store floating tensors as float16 (half the size)")
    parser.add_argument("--folder", default=str(SOURCE_WEIGHTS), help="weights folder holding registry.json")
    args = parser.parse_args(argv)
    record = ship(
        args.source,
        args.name,
        folder=args.folder,
        url=args.url,
        description=args.description,
        default_for=tuple(args.default_for),
        float16=args.float16,
    )
    print(json.dumps({k: v for k, v in record.items() if k != "card"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
