"""CLI for model export: ``export bioimageio NAME... --out DIR``.

Kept free of torch and bioimageio imports at module level so ``napari-cervix --help`` stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import Command


def _add_bioimageio(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "models",
        nargs="+",
        metavar="NAME",
        help="registered semantic model names (e.g. unet-mobilenet_v2, 2se-unet) or .safetensors files",
    )
    p.add_argument("--out", required=True, help="output folder for NAME.zip packages")
    p.add_argument("--size", type=int, default=256, help="side of the generated test image (a multiple of 32)")
    p.add_argument("--no-test", action="store_true", help="skip bioimageio.core's test of each package (on by default)")


def _run_bioimageio(args) -> int:
    from .bioimageio import check_package, export_bioimageio

    failed = []
    for model in args.models:
        package = export_bioimageio(model, Path(args.out), size=args.size)
        if args.no_test:
            print(f"{model} -> {package}")
            continue
        summary = check_package(package)
        print(f"{model} -> {package}: bioimageio.core test {summary.status}")
        if summary.status != "passed":
            print(summary.format())
            failed.append(model)
    return 1 if failed else 0


COMMANDS = [
    Command(
        "export",
        "bioimageio",
        "bioimage.io model packages of semantic models (QuPath, deepImageJ, ilastik, bioimageio.core), each tested",
        _add_bioimageio,
        _run_bioimageio,
    ),
]
