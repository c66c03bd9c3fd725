"""Seconds per image of the instance models, by backend (torch-only vs mmdet/mmcv) and by model, in one run.

    .venv/bin/python benchmarks/instance_speed.py [--threads 2] [--repeats 3] [--isbi ../shared/data/isbi2015_cells]
        [--models lite,full,stock] [--train-steps 2]

**Backends**: the shipped weights (``default``) through :func:`napari_cervix.segment_instances` with
``backend="torch"`` (torch + torchvision only) and ``backend="mmdet"``, on generated smears (512² and a
1024² field, 512 tiles with 128 overlap) and, when the folder is there, on the ISBI 2015 frames
(``coco/coco.json``; the card's validation frame is marked). Every image is segmented by both and their
results compared: count per class equal, min / mean mask IoU of the matched instances, largest score
difference (the issue's bar: same count, IoU ≥ 0.99, score difference ≤ 1e-3). Score threshold 0.05, so
the low-scoring detections are compared too.

**Models** (``--models``, empty to skip): the shipped lite weights, the full preset (paper's ResNeXt-101
64x4d + DCNv2, random weights) and mmdet's stock ``cascade-mask-rcnn_r50_fpn`` (random weights; mmdet only: it
has a mask head per stage), on each backend that runs it, on the same generated 512² smear; random weights
produce up to ``max_detections`` junk boxes, so all are capped at 100 detections like the shipped model.
Training steps (``--train-steps``, mmdet: training is mmdet's) use batch 2 of composited 512² fields.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

SCORE_THRESHOLD = 0.05
ISBI_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2015_cells"


def run_once(image, detector):
    """(wall seconds, CPU seconds of this process, result) of one segmentation. CPU seconds (all threads)
    are what the run itself consumed: on a shared machine the wall time also counts waiting for a core."""
    from napari_cervix.instances import segment_instances

    start, start_cpu = time.perf_counter(), time.process_time()
    # The networks compared, without the semantic model's refinements (the same for every backend).
    no_semantic = dict(refine_nuclei=False, refine_cells=False)
    result = segment_instances(image, detector, score_threshold=SCORE_THRESHOLD, **no_semantic)
    return time.perf_counter() - start, time.process_time() - start_cpu, result


def timed(image, detectors: dict, repeats: int) -> dict:
    """name → (median wall s, median CPU s, result) over ``repeats`` runs after a warm-up run each; the
    detectors take turns run by run, so a change of load on the machine falls on all of them alike."""
    for detector in detectors.values():
        run_once(image, detector)  # warm-up (allocations, lazy initialisation)
    runs = {name: [] for name in detectors}
    for _ in range(repeats):
        for name, detector in detectors.items():
            runs[name].append(run_once(image, detector))
    return {
        name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs), rs[-1][2])
        for name, rs in runs.items()
    }


def images(isbi: Path | None) -> list[tuple[str, np.ndarray]]:
    from napari_cervix.io import load_dataset
    from napari_cervix.registry import read_metadata, resolve
    from napari_cervix.synth import generate_smear, generate_smear_field

    out = [
        ("generated 512² (seed 42)", generate_smear((512, 512), n_cells=8, seed=42).image),
        ("generated 1024² field (seed 7)", generate_smear_field((1024, 1024), n_cells=(7, 8), seed=7).image),
    ]
    coco = isbi / "coco" / "coco.json" if isbi else None
    if coco and coco.exists():
        validation = read_metadata(resolve("default", task="instances")[0]).get("validation", {})
        held_out = {name for entry in validation.values() for name in entry.get("images", [])}
        for sample in load_dataset(f"coco:{coco}"):
            tag = " (validation)" if sample.name in held_out else " (training)"
            out.append((f"ISBI 2015 {sample.name}{tag}", sample.image))
    return out


def compare_backends(isbi: Path | None, repeats: int) -> list[dict]:
    from napari_cervix.instances.model import load_detector
    from napari_cervix.instances.portable.agreement import result_agreement

    detectors = {backend: load_detector("default", backend=backend) for backend in ("torch", "mmdet")}
    rows = []
    for name, image in images(isbi):
        results = {}
        for backend, (seconds, cpu, result) in timed(image, detectors, repeats).items():
            results[backend] = result
            rows.append(
                {
                    "backend": backend,
                    "image": name,
                    "size": f"{image.shape[0]}×{image.shape[1]}",
                    "s_per_image": seconds,
                    "cpu_s_per_image": cpu,
                    "cells": len(result),
                    "nuclei": len(result.nuclei),
                }
            )
        rows[-1]["agreement"] = rows[-2]["agreement"] = result_agreement(results["torch"], results["mmdet"])
        print(json.dumps(rows[-2:], default=str), flush=True)
    return rows


def time_training(preset: str, steps: int, source) -> dict:
    import torch

    from napari_cervix.instances.augment import compose_field
    from napari_cervix.instances.model import new_detector
    from napari_cervix.instances.train import fields_to_batch

    detector = new_detector(preset)
    model = detector.module
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    rng = np.random.default_rng(0)
    times = []
    for step in range(steps + 1):  # the first step is warm-up
        fields = [compose_field(source, rng, 512) for _ in range(2)]
        start = time.perf_counter()
        data = model.data_preprocessor(fields_to_batch(fields, detector.in_channels), True)
        loss, _ = model.parse_losses(model.loss(data["inputs"], data["data_samples"]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    return {"s_per_step_batch2": statistics.median(times), "steps": [round(t, 2) for t in times]}


def time_models(names: list[str], repeats: int, train_steps: int) -> list[dict]:
    from napari_cervix.instances.augment import FieldSource
    from napari_cervix.instances.model import load_detector, new_detector, on_backend
    from napari_cervix.instances.portable import UnsupportedConfig
    from napari_cervix.registry import RegistryError, default_model
    from napari_cervix.synth import generate_smear

    sample = generate_smear((512, 512), n_cells=8, seed=42)
    source = FieldSource([generate_smear((512, 512), n_cells=(4, 8), seed=s) for s in range(4)])
    report = []
    for name in names:
        if name == "lite":
            try:
                detector, weights = load_detector("default"), default_model("instances").name
            except RegistryError:
                detector, weights = new_detector("lite"), "random"
        else:
            detector, weights = new_detector(name), "random"
        for backend in ("torch", "mmdet"):
            try:
                variant = on_backend(detector, backend)
            except UnsupportedConfig:  # e.g. mmdet's stock model: a mask head per stage
                continue
            seconds, cpu, result = timed(sample.image, {backend: variant}, repeats)[backend]
            entry = {
                "model": name,
                "weights": weights,
                "backend": backend,
                "parameters_M": round(variant.num_parameters / 1e6, 2),
                "s_per_image": seconds,
                "cpu_s_per_image": cpu,
                "detections": len(result) + len(result.nuclei),
            }
            if train_steps and backend == "mmdet":  # training is mmdet's
                entry.update(time_training(name, train_steps, source))
            report.append(entry)
            print(json.dumps(entry), flush=True)
    return report


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per image (median), after a warm-up")
    parser.add_argument("--isbi", type=Path, default=ISBI_DEFAULT, help="ISBI 2015 folder with coco/coco.json")
    parser.add_argument("--models", default="lite,full,stock", help="models to time (empty: none)")
    parser.add_argument(
        "--train-steps", type=int, default=0, help="also time this many training steps per model (full: ~1 min each)"
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    print(f"CPU {platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}\n")
    rows = compare_backends(args.isbi, args.repeats)
    models = time_models([m for m in args.models.split(",") if m], args.repeats, args.train_steps)

    print("\n| backend | image | size | s / image | CPU s / image | cells | nuclei |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['backend']} | {r['image']} | {r['size']} | {r['s_per_image']:.2f} | {r['cpu_s_per_image']:.2f} "
            f"| {r['cells']} | {r['nuclei']} |"
        )
    print("\n| image | count equal | matched | unmatched | min mask IoU | mean mask IoU | max score diff |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows[::2]:
        a = r["agreement"]
        print(
            f"| {r['image']} | {'yes' if a['count_equal'] else 'NO'} | {a['matched']} | {a['unmatched']} | "
            f"{a['min_iou']:.4f} | {a['mean_iou']:.4f} | {a['max_score_diff']:.2e} |"
        )
    if models:
        print("\n| model | weights | backend | parameters (M) | s / 512² image | CPU s | train s / step (batch 2) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for e in models:
            step = f"{e['s_per_step_batch2']:.2f}" if "s_per_step_batch2" in e else "–"
            print(
                f"| {e['model']} | {e['weights']} | {e['backend']} | {e['parameters_M']} | {e['s_per_image']:.2f} "
                f"| {e['cpu_s_per_image']:.2f} | {step} |"
            )
    return {"backends": rows, "models": models}


if __name__ == "__main__":
    main()
