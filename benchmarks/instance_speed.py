"""Seconds per 512×512 image (and optionally per training step) of the instance models, in one run.

    .venv/bin/python benchmarks/instance_speed.py [--threads 2] [--repeats 3] [--train-steps 2]

Models: the shipped lite weights (``default``; the lite preset with random weights if none is
registered), the full preset (paper's ResNeXt-101 64x4d + DCNv2, random weights) and mmdet's stock
``cascade-mask-rcnn_r50_fpn`` (mask head at every stage, random weights), all on the same generated
512² smear, through :func:`napari_cervix.segment_instances` (preprocessing, network, masks). Random
weights produce up to ``max_detections`` junk boxes; the full and stock models are timed with the same
100-detection cap as the shipped model. Training steps use batch 2 of composited 512² fields.
Prints a JSON object; the issue's bar is lite ≤ 3 s per image on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np


def time_inference(detector, image, repeats: int) -> dict:
    from napari_cervix.instances import segment_instances

    segment_instances(image, detector, score_threshold=0.05)  # warm-up (allocations, lazy init)
    times, counts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = segment_instances(image, detector, score_threshold=0.05)
        times.append(time.perf_counter() - start)
        counts.append(len(result) + len(result.nuclei))
    return {"s_per_image": statistics.median(times), "runs": [round(t, 3) for t in times], "detections": counts[-1]}


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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--train-steps", type=int, default=0, help="also time this many training steps per model (full: ~1 min each)"
    )
    parser.add_argument("--models", default="lite,full,stock")
    args = parser.parse_args(argv)

    import torch

    from napari_cervix.instances.augment import FieldSource
    from napari_cervix.instances.model import load_detector, new_detector
    from napari_cervix.registry import RegistryError, default_model
    from napari_cervix.synth import generate_smear

    torch.set_num_threads(args.threads)
    sample = generate_smear((512, 512), n_cells=8, seed=42)
    report = {
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "image": "generate_smear((512, 512), n_cells=8, seed=42)",
        "models": {},
    }
    source = FieldSource([generate_smear((512, 512), n_cells=(4, 8), seed=s) for s in range(4)])
    for name in args.models.split(","):
        if name == "lite":
            try:
                detector = load_detector("default")
                weights = default_model("instances").name
            except RegistryError:
                detector, weights = new_detector("lite"), "random"
        else:
            detector, weights = new_detector(name), "random"
        entry = {
            "weights": weights,
            "parameters_M": round(detector.num_parameters / 1e6, 2),
            **time_inference(detector, sample.image, args.repeats),
        }
        if args.train_steps:
            entry.update(time_training(name, args.train_steps, source))
        report["models"][name] = entry
        print(name, json.dumps(entry), flush=True)
    print(f"\nCPU, {args.threads} threads, torch {torch.__version__}, {report['image']}\n")
    print("| model | weights | parameters (M) | s / 512² image | train s / step (batch 2) |")
    print("| --- | --- | --- | --- | --- |")
    for name, e in report["models"].items():
        step = f"{e['s_per_step_batch2']:.2f}" if "s_per_step_batch2" in e else "–"
        print(f"| {name} | {e['weights']} | {e['parameters_M']} | {e['s_per_image']:.2f} | {step} |")
    return report


if __name__ == "__main__":
    main()
