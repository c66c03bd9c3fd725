"""CLI for overlapping-cell instances: ``segment instances``, ``evaluate instances``, ``train instances``.

No torch/mmdet at module level, so ``napari-cervix --help`` stays instant and works without mmdet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import Command, add_scale_arguments, scale_options
from .completion import COMPLETE_NUCLEI


def _add_backend(p: argparse.ArgumentParser) -> None:
    from .model import BACKENDS  # numpy only, like the parser's other imports

    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="what runs the network: 'torch' (torch + torchvision only), 'mmdet' (MMDetection + mmcv's "
        "compiled ops), or 'auto' (default: torch; both give the same detections)",
    )


def _add_refine(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-refine-nuclei",
        dest="refine_nuclei",
        action="store_false",
        help="keep the detector's own nucleus masks (by default each is redrawn on the semantic default's "
        "nucleus probability)",
    )
    p.add_argument(
        "--no-refine-cells",
        dest="refine_cells",
        action="store_false",
        help="keep the detector's own cell masks (by default each cell's edge against the background is "
        "redrawn on the semantic default's foreground)",
    )


def _add_segment(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files (tif/png/jpg), gray or RGB, any size")
    p.add_argument(
        "--out",
        required=True,
        help="output folder: NAME_cells.tif (N×H×W uint8 stack of overlapping cell masks), "
        "NAME_cell_labels.tif (smallest cell wins overlaps), NAME_nuclei.tif (nuclei "
        "labelled with their cell's id), NAME_cells.csv (cell_id, score, area, nuclei)",
    )
    p.add_argument("--model", default="default", help="registered model name or a .safetensors file")
    p.add_argument("--score-threshold", type=float, default=0.5)
    p.add_argument("--max-detections", type=int, default=100, help="per tile (network pass)")
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--overlap", type=int, default=128)
    p.add_argument(
        "--complete-nuclei",
        choices=tuple(COMPLETE_NUCLEI),
        default="auto",
        help="add the nuclei the detector missed from the semantic default, each with a cell: 'auto' "
        "(default) for color images only, 'on', 'off'",
    )
    _add_refine(p)
    _add_backend(p)
    add_scale_arguments(p)


def _run_segment(args) -> int:
    import numpy as np
    import tifffile

    from ..io import read_image
    from ..scale import Scale, describe_scale
    from .inference import segment_instances
    from .model import load_detector

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    detector = load_detector(args.model, backend=args.backend)  # once for every image
    for name in args.images:
        image = read_image(name)
        result = segment_instances(
            image,
            detector,
            score_threshold=args.score_threshold,
            max_detections=args.max_detections,
            tile_size=args.tile_size,
            overlap=args.overlap,
            complete_nuclei=COMPLETE_NUCLEI[args.complete_nuclei],
            refine_nuclei=args.refine_nuclei,
            refine_cells=args.refine_cells,
            **scale_options(args),
        )
        stem = out / Path(name).stem
        tifffile.imwrite(f"{stem}_cells.tif", result.cells.to_stack().astype(np.uint8), compression="zlib")
        tifffile.imwrite(f"{stem}_cell_labels.tif", result.cell_labels(), compression="zlib")
        tifffile.imwrite(f"{stem}_nuclei.tif", result.nucleus_labels(), compression="zlib")
        nuclei_per_cell = np.bincount(result.nucleus_cell_ids, minlength=len(result) + 1)
        lines = ["cell_id,score,area,n_nuclei"] + [
            f"{i},{s:.4f},{a},{nuclei_per_cell[i]}" for i, s, a in zip(result.cell_ids, result.scores, result.areas)
        ]
        Path(f"{stem}_cells.csv").write_text("\n".join(lines) + "\n")
        completed = result.meta["completed"]
        added = f", {completed['nuclei']} of them added by the semantic model" if completed else ""
        refined = result.meta["refined"]
        added += f", {refined['refined']} redrawn on the semantic model's nucleus probability" if refined else ""
        edges = result.meta["refined_cells"]
        edges = f" ({edges['refined']} with their edge redrawn on the semantic model's foreground)" if edges else ""
        print(
            f"{name} -> {stem}_*.tif: {len(result)} cells{edges}, {len(result.nuclei)} nuclei{added} "
            f"({result.meta['model']} on the {result.meta['backend']} backend; "
            f"{describe_scale(Scale(**result.meta['scale']))})"
        )
    return 0


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="registered model name or a .safetensors file")
    p.add_argument(
        "--dataset",
        required=True,
        action="append",
        help="dataset spec (coco:FILE.json, isbi2014:DIR, isbi2015:DIR); repeatable",
    )
    p.add_argument(
        "--split",
        choices=("val", "all"),
        default="val",
        help="'val': only the images the model's metadata lists as validation (default); 'all': every image",
    )
    p.add_argument("--score-threshold", type=float, default=0.05)
    p.add_argument(
        "--challenge-score-threshold",
        type=float,
        default=0.5,
        help="the ISBI challenge measures (DC, FNo, TPp, FPp) score the cells scoring at least this "
        "(default 0.5, the segment command's), a final segmentation rather than COCO's ranked list",
    )
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--overlap", type=int, default=128)
    _add_refine(p)
    _add_backend(p)
    p.add_argument("--json", action="store_true", help="print only the JSON result")


def _challenge_table(challenge: dict) -> str:
    """The ISBI challenge measures of ``challenge_measures`` as a small text table, one row per matching."""
    from ..metrics import CHALLENGE_MATCHINGS

    def cell(value, digits):
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [
        f"ISBI 2014/2015 challenge measures of cells (found: Dice > {challenge['dice_threshold']}; "
        f"predictions scoring >= {challenge['min_score']}):",
        f"{'matching':<18} {'DC':>6} {'FNo':>6} {'TPp':>6} {'FPp':>7} {'found':>9}",
    ]
    for name in CHALLENGE_MATCHINGS:
        m = challenge[name]
        lines.append(
            f"{name:<18} {cell(m['DC'], 3):>6} {cell(m['FNo'], 3):>6} {cell(m['TPp'], 3):>6} "
            f"{cell(m['FPp'], 4):>7} {str(m['found']) + '/' + str(challenge['n_cells']):>9}"
        )
    return "\n".join(lines)


def _run_evaluate(args) -> int:
    from .evaluate import evaluate_instances
    from .model import load_detector

    quiet = args.json
    detector = load_detector(args.model, backend=args.backend)
    result = evaluate_instances(
        detector,
        args.dataset,
        split=args.split,
        score_threshold=args.score_threshold,
        tile_size=args.tile_size,
        overlap=args.overlap,
        challenge_score_threshold=args.challenge_score_threshold,
        refine_nuclei=args.refine_nuclei,
        refine_cells=args.refine_cells,
        log=(lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr)),
    )
    result["backend"] = detector.backend
    if not quiet:  # stdout stays JSON; the table is for the reader
        print(_challenge_table(result["challenge"]["cell"]), file=sys.stderr)
    print(json.dumps(result, indent=None if quiet else 2))
    return 0


def _add_train(p: argparse.ArgumentParser) -> None:
    from ..kinds import KINDS

    presets = [kind.preset for kind in KINDS.values() if kind.task == "instances"]
    p.add_argument("--preset", choices=presets, default="lite", help="IMBMDCR-Net preset (kinds.imbmdcr)")
    p.add_argument(
        "--dataset",
        required=True,
        action="append",
        help="dataset spec with per-cell masks (coco:FILE.json, isbi2014:DIR, isbi2015:DIR); "
        "repeatable, each one image domain, drawn from equally often",
    )
    p.add_argument(
        "--out",
        default="runs/instances-lite",
        help="run folder: last.pt (resumable checkpoint), model.safetensors (weights)",
    )
    p.add_argument("--steps", type=int, help="total steps (default: the preset's schedule)")
    p.add_argument("--batch-size", type=int, help="images per step (default: the preset's, 2)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument(
        "--composite", type=float, default=0.5, help="fraction of training fields built by the compositing augmentation"
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    p.add_argument("--workers", type=int, default=0, help="processes drawing training fields")
    p.add_argument("--init", help="start from a .safetensors file of the same preset")
    p.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    p.add_argument("--max-minutes", type=float, help="stop, checkpoint and export after this long")


def _run_train(args) -> int:
    from .train import train_instances

    weights = train_instances(
        args.dataset,
        out_dir=args.out,
        preset=args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        resume=args.resume,
        val_fraction=args.val_fraction,
        seed=args.seed,
        checkpoint_seconds=60.0 * args.checkpoint_minutes,
        device=args.device,
        threads=args.threads,
        p_composite=args.composite,
        workers=args.workers,
        init=args.init,
        lr=args.lr,
        max_minutes=args.max_minutes,
        log=lambda *a: print(*a, flush=True),
    )
    print(f"weights: {weights}")
    return 0


COMMANDS = [
    Command(
        "segment", "instances", "every cell and nucleus as its own mask, overlaps intact", _add_segment, _run_segment
    ),
    Command(
        "evaluate",
        "instances",
        "COCO mask AP (overall and per category) and the ISBI challenge's DC/FNo/TPp/FPp of an instance model",
        _add_evaluate,
        _run_evaluate,
    ),
    Command(
        "train",
        "instances",
        "train IMBMDCR-Net (lite or full preset) with compositing augmentation",
        _add_train,
        _run_train,
    ),
]
