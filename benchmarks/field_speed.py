"""Seconds per stage of ``analyze_field`` on 1280×960 fields, default settings, as a table.

    nice -n 10 .venv/bin/python benchmarks/field_speed.py [--data ../shared/data] [--fields 5] [--herlev]

Fields: the first ``--fields`` CRIC fields (real Papanicolaou RGB, 1280 × ~960) when the data are there,
else generated RGB smears of 1280 × 960. Stages (from the function's own progress steps): nuclei and cells
(semantic model + watershed), measurements + Bethesda grade, the Herlev opinion (``--herlev``), triage.
The first call (model loading) is reported apart. Data: CRIC Cervix (Rezende et al., Sci. Data 8:151,
2021; CC BY 4.0).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_cervix.field import analyze_field


def fields(data: Path, count: int):
    images = sorted((data / "cric_fields" / "images").glob("*.jpg"))[:count]
    if images:
        from napari_cervix.io.images import read_image

        return "CRIC", [read_image(p) for p in images]
    from napari_cervix.synth import generate_smear

    return "generated", [generate_smear((960, 1280), n_cells=(20, 30), seed=s, rgb=True).image for s in range(count)]


def timed(image, herlev: bool) -> tuple[float, list[float], int]:
    marks = [time.perf_counter()]
    result = analyze_field(
        image, herlev_model="default" if herlev else None, progress=lambda _: marks.append(time.perf_counter())
    )
    stages = list(np.diff(marks)[1:])  # the first mark is the start step (0 of N)
    return marks[-1] - marks[0], stages, len(result.table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--fields", type=int, default=5)
    parser.add_argument("--herlev", action="store_true", help="also time the Herlev 7-class opinion")
    args = parser.parse_args()
    source, images = fields(Path(args.data), args.fields)
    first, _, _ = timed(images[0], args.herlev)  # loads the models
    names = ["nuclei + cells", "measure + grade"] + (["Herlev opinion"] if args.herlev else []) + ["triage"]
    print(f"{len(images)} {source} fields {images[0].shape[1]}×{images[0].shape[0]}; first call {first:.2f} s")
    print("| field | cells | total s | " + " | ".join(f"{n} s" for n in names) + " |")
    print("| --- " * (3 + len(names)) + "|")
    totals = []
    for k, image in enumerate(images):
        total, stages, cells = timed(image, args.herlev)
        totals.append(total)
        print(f"| {k} | {cells} | {total:.2f} | " + " | ".join(f"{s:.2f}" for s in stages) + " |")
    print(f"mean {np.mean(totals):.2f} s per field, max {np.max(totals):.2f} s")


if __name__ == "__main__":
    main()
