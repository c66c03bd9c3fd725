"""CLI for the semantic capability: ``segment semantic``, ``evaluate semantic``, ``train semantic``.

Kept free of torch imports at module level so ``napari-cervix --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import Command, add_scale_arguments, scale_options


def _add_segment(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files (tif/png/jpg), gray or RGB, any size")
    p.add_argument(
        "--out", required=True, help="output folder for NAME_semantic.tif label images (0 bg, 1 cyto, 2 nucleus)"
    )
    p.add_argument("--model", default="default", help="registered model name or a .safetensors file")
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--tta", action="store_true", help="average over flips")
    p.add_argument("--crf", action="store_true", help="fully connected CRF refinement")
    add_scale_arguments(p)


def _run_segment(args) -> int:
    import tifffile

    from ..io import read_image
    from ..scale import describe_scale
    from .inference import segment_semantic

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.images:
        image = read_image(name)
        labels, scale = segment_semantic(
            image,
            args.model,
            tile_size=args.tile_size,
            overlap=args.overlap,
            tta=args.tta,
            crf=args.crf,
            return_scale=True,
            **scale_options(args),
        )
        target = out / f"{Path(name).stem}_semantic.tif"
        tifffile.imwrite(target, labels)
        counts = {c: int((labels == i).sum()) for i, c in enumerate(("background", "cytoplasm", "nucleus"))}
        print(f"{name} -> {target} {counts} {describe_scale(scale)}")
    return 0


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="registered model name or a .safetensors file")
    p.add_argument(
        "--dataset",
        required=True,
        action="append",
        help="dataset spec (isbi2014:DIR, edf-nuclei:DIR, isbi2015:DIR, coco:FILE.json); repeatable",
    )
    p.add_argument(
        "--split",
        choices=("val", "all"),
        default="val",
        help="'val': only the images the model's metadata lists as validation (default); 'all': every image",
    )
    p.add_argument("--tta", action="store_true")
    p.add_argument("--crf", action="store_true")
    p.add_argument("--json", action="store_true", help="print only the JSON result")


def _run_evaluate(args) -> int:
    from .evaluate import evaluate_semantic

    result = evaluate_semantic(
        args.model,
        args.dataset,
        split=args.split,
        tta=args.tta,
        crf=args.crf,
        log=(lambda *a: None) if args.json else print,
    )
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def _add_train(p: argparse.ArgumentParser) -> None:
    from ..kinds import kind_names

    p.add_argument("--arch", default="unet-resnet18", choices=kind_names("semantic"))
    p.add_argument(
        "--dataset",
        required=True,
        action="append",
        help="dataset spec, repeatable (isbi2014:DIR, edf-nuclei:DIR, isbi2015:DIR, or pack:FILE.npz)",
    )
    p.add_argument("--out", required=True, help="run folder (last.pt, best.safetensors, best.json)")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss", default="ce+dice")
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--arch-options", default="{}", help="JSON constructor options, e.g. '{\"width\": 16}'")
    p.add_argument("--init", help="warm-start from a .safetensors file (e.g. the shipped weights)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--max-minutes", type=float, help="also stop (LR annealed) after this much wall time")
    p.add_argument(
        "--focus-share",
        type=float,
        default=0.0,
        help="share of crops cut around annotated abnormal cells (CRIC points), each class equally often",
    )
    p.add_argument("--pack", metavar="FILE.npz", help="only write the prepared training set to FILE and stop")


def _run_train(args) -> int:
    from .train import SemanticTrainConfig, train_semantic

    if args.pack:
        from .data import pack_training_set

        pack_training_set(args.dataset, args.pack, seed=args.seed)
        print(f"wrote {args.pack}")
        return 0
    config = SemanticTrainConfig(
        architecture=args.arch,
        datasets=args.dataset,
        out=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        crop=args.crop,
        lr=args.lr,
        loss=args.loss,
        val_every=args.val_every,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        arch_options=json.loads(args.arch_options),
        init=args.init,
        resume=args.resume,
        max_minutes=args.max_minutes,
        focus_share=args.focus_share,
    )
    best = train_semantic(config, log=lambda *a: print(*a, flush=True, file=sys.stdout))
    print(f"best weights: {best}")
    return 0


COMMANDS = [
    Command("segment", "semantic", "background / cytoplasm / nucleus label images", _add_segment, _run_segment),
    Command(
        "evaluate",
        "semantic",
        "pixel metrics (MPA, mIoU, Dice/P/R per class) of a semantic model",
        _add_evaluate,
        _run_evaluate,
    ),
    Command("train", "semantic", "train a U-Net variant on real data", _add_train, _run_train),
]
