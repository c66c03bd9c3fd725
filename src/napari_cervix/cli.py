"""``napari-cervix`` command line: demo | segment | classify | evaluate | train | analyze | report | export.

Each capability contributes its sub-commands through a light ``commands`` module (no torch/mmdet at
import time) listing :class:`Command` objects; this file only assembles the parser, so the CLI calls
exactly the functions the console API and the widgets call.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

VERBS = {
    "demo": "run the whole pipeline headless on a bundled generated smear",
    "segment": "segment images (semantic | instances)",
    "classify": "measure and classify cells of a labelled image",
    "evaluate": "score a model on a dataset (prints JSON with --json)",
    "train": "train a model on a dataset",
    "analyze": "analyze whole slides or folders of slides (resumable; dask for scale-out)",
    "report": "write an HTML + CSV review report of a cell table",
    "export": "export models for use outside napari (bioimage.io packages)",
}
COMMAND_MODULES = (
    "napari_cervix.demo",
    "napari_cervix.semantic.commands",
    "napari_cervix.instances.commands",
    "napari_cervix.cells.commands",
    "napari_cervix.slide_analysis",
    "napari_cervix.report",
    "napari_cervix.export.commands",
)


@dataclass(frozen=True)
class Command:
    verb: str  # one of VERBS
    task: str | None  # sub-command under the verb ("semantic"), or None for a verb with no task
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


def add_scale_arguments(p: argparse.ArgumentParser) -> None:
    """``--pixel-size`` / ``--no-estimate-scale``: the image's µm per pixel (see :mod:`napari_cervix.scale`)."""
    p.add_argument(
        "--pixel-size",
        type=float,
        metavar="UM",
        help="µm per pixel of the images; they are resampled to each model's training pixel size and the "
        "results mapped back (default: estimated from the nuclei of each image)",
    )
    p.add_argument(
        "--no-estimate-scale",
        action="store_true",
        help="without --pixel-size, run the images as they are instead of estimating their scale",
    )


def scale_options(args: argparse.Namespace) -> dict:
    """The API keywords of :func:`add_scale_arguments`' options."""
    return {"pixel_size_um": args.pixel_size, "estimate_scale": not args.no_estimate_scale}


def _commands() -> list[Command]:
    found = []
    for module_name in COMMAND_MODULES:
        found.extend(importlib.import_module(module_name).COMMANDS)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-cervix", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    commands = _commands()
    for verb, verb_help in VERBS.items():
        mine = [c for c in commands if c.verb == verb]
        if not mine:
            continue
        if len(mine) == 1 and mine[0].task is None:
            sub = verbs.add_parser(verb, help=verb_help, description=mine[0].help)
            mine[0].add_arguments(sub)
            sub.set_defaults(_run=mine[0].run)
            continue
        verb_parser = verbs.add_parser(verb, help=verb_help)
        tasks = verb_parser.add_subparsers(dest="task", required=True, metavar="TASK")
        for command in mine:
            sub = tasks.add_parser(command.task, help=command.help, description=command.help)
            command.add_arguments(sub)
            sub.set_defaults(_run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        # Our errors carry a message meant for the user: no traceback.
        print(f"napari-cervix: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
