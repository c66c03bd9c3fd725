"""Slide pipeline at scale: cells, seconds, tiles/s and peak memory of the process tree, per slide size; and
2 workers × 1 thread against 1 worker × 1 thread on the same slide.

    .venv/bin/python benchmarks/slide_scale.py --fields ../shared/data/cric_fields/images --sizes 4096 16384 32768

With ``--versus-fields`` it instead checks that a mosaicked slide gives the cells and Bethesda grades of the
per-field pipeline on its fields one by one (see :func:`versus_fields`):

    .venv/bin/python benchmarks/slide_scale.py --fields ../shared/data/cric_fields/images --versus-fields

Slides are pyramidal OME-TIFFs mosaicked from real fields (:class:`FieldMosaic`: whole fields in clumps and
horizontal bands, about 40 % of the area, bare glass between them, deterministic from ``--seed``), written
to a temporary folder and never kept. Each run is its own process; the process tree (dask workers and
helpers included) is sampled with psutil for the sum of its RSS (every 0.25 s) and of its PSS (every 2 s:
reading it costs the workers CPU): RSS counts the pages every worker maps from the same libraries (torch)
once per process, PSS shares them out, so the PSS sum is what the tree really holds. PSS also shares pages
with processes outside the tree (any other torch process on the machine lowers it): measure on an idle
machine.

Each finished tile records its worker, start and seconds (``tile_timings``); from them the table is followed
by one row per worker (its first tile, which loads the models, and the median of its other tiles in each
third of the run, so a slowdown over a long run shows) and the 2-against-1 ratio twice: over the whole run
(wall time, the issue's measure) and over the tile phase alone (first tile's start to last tile's end).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PSS_SECONDS = 2.0  # how often the process tree's PSS is read (RSS: every 0.25 s)
TISSUE_FRACTION = 0.4  # of the slide's area in whole fields; a smear leaves most of its glass bare


def glass_color(fields: list[np.ndarray]) -> tuple[int, int, int]:
    """The mosaic's glass: the median background of the fields (each field's brightest quarter of pixels),
    since the light between a field's cells is the same glass the fields lie on."""
    backgrounds = []
    for field in fields:
        pixels = field.reshape(-1, 3)
        luminance = pixels.mean(axis=1)
        backgrounds.append(np.median(pixels[luminance >= np.percentile(luminance, 75)], axis=0))
    return tuple(int(round(v)) for v in np.median(backgrounds, axis=0))


def smear_layout(rows: int, cols: int, n_fields: int, seed: int) -> np.ndarray:
    """rows × cols bool: which field slots hold a field. The ``n_fields`` slots where a smooth random field is
    highest, so fields come in clumps and bands (smoothed more along x: a spatula spreads a smear in
    streaks) with wide glass between them rather than evenly spread."""
    from scipy.ndimage import gaussian_filter

    noise = np.random.default_rng(seed).standard_normal((rows, cols))
    smooth = gaussian_filter(noise, sigma=(1.0, 2.5), mode="nearest")
    occupied = np.zeros(rows * cols, bool)
    occupied[np.argsort(-smooth, axis=None, kind="stable")[:n_fields]] = True
    return occupied.reshape(rows, cols)


class FieldMosaic:
    """side × side RGB slide: whole fields on a grid of field-sized slots, ``tissue_fraction`` of the area in
    fields laid out by :func:`smear_layout`, glass elsewhere (also the strips right and below the last
    whole slot); read lazily, never held whole. ``placements``: (field index, y0, x0) of each field."""

    def __init__(self, fields: list[np.ndarray], side: int, seed: int = 0, tissue_fraction: float = TISSUE_FRACTION):
        self.fields, self.side = fields, side
        self.fh, self.fw = fields[0].shape[:2]
        self.shape, self.dtype, self.ndim = (side, side, 3), np.dtype(np.uint8), 3
        rows, cols = side // self.fh, side // self.fw
        n_fields = min(rows * cols, round(tissue_fraction * side * side / (self.fh * self.fw)))
        self.occupied = smear_layout(rows, cols, n_fields, seed)
        self.placements = [
            ((r * 7 + c) % len(fields), r * self.fh, c * self.fw) for r, c in np.argwhere(self.occupied).tolist()
        ]
        self.field_fraction = n_fields * self.fh * self.fw / side**2
        self.glass = glass_color(fields)

    def __getitem__(self, key):
        rows, cols = (range(self.side)[k] for k in key[:2])
        out = np.empty((len(rows), len(cols), 3), np.uint8)
        out[:] = self.glass
        for r in range(rows.start // self.fh, min((rows.stop - 1) // self.fh + 1, self.occupied.shape[0])):
            for c in range(cols.start // self.fw, min((cols.stop - 1) // self.fw + 1, self.occupied.shape[1])):
                if not self.occupied[r, c]:
                    continue
                field = self.fields[(r * 7 + c) % len(self.fields)]
                y0, x0 = r * self.fh, c * self.fw
                ys = slice(max(rows.start, y0), min(rows.stop, y0 + self.fh))
                xs = slice(max(cols.start, x0), min(cols.stop, x0 + self.fw))
                out[ys.start - rows.start : ys.stop - rows.start, xs.start - cols.start : xs.stop - cols.start] = field[
                    ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0
                ]
        return out


def read_fields(folder, count: int = 20) -> list[np.ndarray]:
    """The first ``count`` JPEG fields of ``folder`` (RGB), cut to a common height (CRIC's vary by a row)."""
    from napari_cervix.io import read_image

    fields = [read_image(p)[..., :3] for p in sorted(Path(folder).glob("*.jpg"))[:count]]
    height = min(f.shape[0] for f in fields)
    return [f[:height] for f in fields]


def cric_pixel_size() -> float | None:
    """CRIC's µm per pixel as recorded in the color models' cards (estimated from its normal nuclei)."""
    from napari_cervix.registry import read_card, resolve

    return read_card(resolve("default", "semantic", "rgb")[0]).input.pixel_size_um


def write_mosaic(path: Path, mosaic: FieldMosaic) -> Path:
    """The mosaic as a pyramidal OME-TIFF with CRIC's pixel size in its metadata (so the slide pipeline
    runs the tiles at the models' pixel size, as it would a real slide's)."""
    from napari_cervix.io.slides import write_ome_tiff

    return write_ome_tiff(path, mosaic, pixel_size_um=cric_pixel_size())


# --------------------------------------------------------------------------------------- scale table
def run_measured(slide: Path, out: Path, workers: int | None) -> dict:
    """The slide's summary from a fresh process (with ``seconds_by_step``: where the run's time went), its wall
    time (Python's start and imports included) and the peak RSS and PSS sums of its process tree."""
    import psutil

    code = (
        "import json, sys; from napari_cervix.slide_analysis import analyze_slide, tile_timings\n"
        "workers = int(sys.argv[3]) or None\n"
        "summary = analyze_slide(sys.argv[1], sys.argv[2], workers=workers).summary\n"
        "print(json.dumps({**summary, 'timings': tile_timings(sys.argv[2]).to_dict('list')}))\n"
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(slide), str(out), str(workers or 0)], stdout=subprocess.PIPE, text=True
    )
    parent, peak_rss, peak_pss, last_pss = psutil.Process(process.pid), 0, 0, 0.0
    while process.poll() is None:
        # PSS means reading every process's smaps (~20 ms each, holding its memory map's lock): at 4 Hz
        # over the tree that takes a core's fifth from the workers, so PSS is read every PSS_SECONDS only.
        full = time.perf_counter() - last_pss >= PSS_SECONDS
        rss = pss = 0
        try:
            tree = [parent, *parent.children(recursive=True)]
        except psutil.Error:
            tree = []
        for member in tree:
            try:
                memory = member.memory_full_info() if full else member.memory_info()
            except psutil.Error:  # a process that ended between listing and reading
                continue
            rss, pss = rss + memory.rss, pss + (memory.pss if full else 0)
        if full:
            last_pss, peak_pss = time.perf_counter(), max(peak_pss, pss)
        peak_rss = max(peak_rss, rss)
        time.sleep(0.25)
    summary = json.loads(process.stdout.read().strip().splitlines()[-1])
    summary["wall_seconds"] = time.perf_counter() - started
    summary["timings"] = pd.DataFrame(summary["timings"])  # this process stays free of torch: PSS is shared
    summary["peak_rss_gb"], summary["peak_pss_gb"] = peak_rss / 2**30, peak_pss / 2**30
    return summary


def tile_phase_span(timings) -> tuple[float, float]:
    """The tile phase: the first tile's start and the last tile's end (workers started, table and labels
    not yet written)."""
    return timings.started.min(), (timings.started + timings.seconds).max()


def tile_phase(timings) -> tuple[float, float]:
    """Tiles per second over the tile phase, and the median seconds of one tile."""
    start, end = tile_phase_span(timings)
    return len(timings) / (end - start), float(timings.seconds.median())


def worker_drift(timings, label: str) -> list[str]:
    """Per worker: its tiles, its first tile's seconds (models loaded then) and the median seconds of its
    other tiles in each third of the tile phase, so a slowdown over a long run shows (and whom it hits)."""
    start, end = tile_phase_span(timings)
    third = np.minimum((3 * (timings.started - start) / (end - start)).astype(int), 2)
    rows = []
    for worker, own in timings.groupby("worker", sort=True):
        rest = own.iloc[1:]
        medians = [rest.seconds[third[rest.index] == k].median() for k in range(3)]
        thirds = " / ".join("–" if np.isnan(m) else f"{m:.2f}" for m in medians)
        pid = worker.rsplit(":", 1)[-1]
        rows.append(f"| {label} | {pid} | {len(own)} | {own.seconds.iloc[0]:.1f} | {thirds} |")
    return rows


def scale_table(fields, sizes, compare_at: int, seed: int) -> None:
    print(
        "| slide | workers | fields (area) | tiles with tissue / all | skipped | cells | seconds | tiles/s "
        "| peak RSS (GB) | peak PSS (GB) | s: tissue / tiles / table / labels |"
    )
    print("| --- " * 11 + "|")
    rates, phase_rates, drift = {}, {}, []
    with tempfile.TemporaryDirectory() as folder:
        for side, workers in [(side, 1) for side in sizes] + [(compare_at, 2)]:
            mosaic = FieldMosaic(fields, side, seed)
            slide = Path(folder) / f"mosaic_{side}.ome.tif"
            if not slide.exists():
                write_mosaic(slide, mosaic)
            s = run_measured(slide, Path(folder) / f"out_{side}_{workers}", workers)
            tiles = s["tiles_with_tissue"]
            rates[side, workers] = tiles / s["wall_seconds"]
            phase_rates[side, workers], median = tile_phase(s["timings"])
            drift += worker_drift(s["timings"], f"{side}², {workers} × 1 (tile median {median:.2f} s)")
            print(
                f"| {side}² | {workers} × 1 thread | {len(mosaic.placements)} ({mosaic.field_fraction:.0%}) | "
                f"{tiles} / {s['tiles']} | {s['skipped_fraction']:.0%} | {s['cells']} | {s['wall_seconds']:.0f} | "
                f"{rates[side, workers]:.3f} | {s['peak_rss_gb']:.2f} | {s['peak_pss_gb']:.2f} | "
                f"{' / '.join(f'{v:.0f}' for v in s['seconds_by_step'].values())} |",
                flush=True,
            )
    print("\n| run | worker (pid) | tiles | first tile, s | later tiles: median s, 1st / 2nd / 3rd third |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(drift))
    if (compare_at, 1) in rates:
        whole = rates[compare_at, 2] / rates[compare_at, 1]
        phase = phase_rates[compare_at, 2] / phase_rates[compare_at, 1]
        print(f"\n2 workers / 1 worker at {compare_at}²: {whole:.2f}× tiles/s over the whole run (wall time)")
        print(f"{phase:.2f}× over the tile phase alone (first tile's start to last tile's end)")


# ------------------------------------------------------------------------------------ versus fields
def match_by_centroid(a: np.ndarray, b: np.ndarray, tolerance: float) -> list[tuple[int, int]]:
    """Pairs (i, j) of points of ``a`` and ``b`` (N×2) closer than ``tolerance``, one-to-one, minimizing the
    summed distance (Hungarian assignment)."""
    from scipy.optimize import linear_sum_assignment

    if not len(a) or not len(b):
        return []
    distance = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    far = distance > tolerance
    rows, cols = linear_sum_assignment(np.where(far, 1e9, distance))
    return [(i, j) for i, j in zip(rows.tolist(), cols.tolist()) if not far[i, j]]


def match_by_iou(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """Pairs (label in ``a``, label in ``b``) of cells of two label images of the same region whose masks
    overlap with IoU > ``threshold`` (one-to-one by construction for a threshold ≥ 0.5)."""
    from napari_cervix.cellset import Masks
    from napari_cervix.metrics import mask_intersections

    (first, first_ids), (second, second_ids) = Masks.from_labels(a), Masks.from_labels(b)
    overlap = mask_intersections(first, second)
    iou = overlap / np.maximum(first.areas[:, None] + second.areas[None, :] - overlap, 1)
    rows, cols = np.nonzero(iou > threshold)
    return list(zip(first_ids[rows].tolist(), second_ids[cols].tolist()))


def centroids(table) -> np.ndarray:
    return table[["centroid_y", "centroid_x"]].to_numpy(float)


def grades(table) -> np.ndarray:
    """Each cell's Bethesda grade; "ungraded" for a cell without one (no nucleus)."""
    return table["bethesda_class"].astype(object).where(table["bethesda_class"].notna(), "ungraded").to_numpy()


def versus_fields(fields, side: int, seed: int, tolerance: float, shift: int = 200) -> None:
    """The slide pipeline on a mosaic against :func:`~napari_cervix.field.analyze_field` on each of its
    fields alone, with the settings the slide uses per tile (analyze_field's defaults: the semantic model's
    cells and the default Bethesda grader). Cells are matched by centroid (slide coordinates, within
    ``tolerance`` px, one-to-one, see :func:`match_by_centroid`); each difference — a cell found one way
    only, or a matched cell graded differently — is counted where it lies: in a tile overlap (within half
    the overlap of a boundary between tile cores, where the slide hands a cell from one tile to the next),
    at a field's edge (within as much of the field's border, where the slide shows a neighbouring field or
    glass and the field alone shows nothing), or elsewhere.

    The control: each field alone again, shifted by ``shift`` px of glass (top and left), so the models'
    own tiles fall elsewhere on the cells, as they do on the slide's tiles. Its agreement with the
    unshifted field is what the per-field pipeline itself reproduces; the slide should match it."""
    import zarr

    from napari_cervix.field import analyze_field
    from napari_cervix.slide_analysis import LABELS, SlideSettings, analyze_slide, tile_cores
    from napari_cervix.tiling import tile_grid

    settings = SlideSettings()
    band = settings.overlap / 2
    mosaic = FieldMosaic(fields, side, seed)
    with tempfile.TemporaryDirectory() as folder:
        slide = write_mosaic(Path(folder) / "mosaic.ome.tif", mosaic)
        started = time.perf_counter()
        table = analyze_slide(slide, Path(folder) / "out", settings).table
        slide_seconds = time.perf_counter() - started
        slide_cells = np.asarray(zarr.open_group(str(Path(folder) / "out" / LABELS), mode="r")["cells/0"])
    cores = tile_cores(tile_grid(mosaic.shape, settings.tile_size, settings.overlap), mosaic.shape)
    cuts_y = np.array(sorted({c[0] for c in cores} - {0}), float)
    cuts_x = np.array(sorted({c[2] for c in cores} - {0}), float)

    def where(y: float, x: float, y0: int, x0: int) -> str:
        if min(np.abs(cuts_y - y).min(initial=np.inf), np.abs(cuts_x - x).min(initial=np.inf)) < band:
            return "overlap"
        if min(y - y0, y0 + mosaic.fh - y, x - x0, x0 + mosaic.fw - x) < band:
            return "edge"
        return "elsewhere"

    def alone(image, dy: int, dx: int):
        """analyze_field's table of ``image``, centroids moved by (dy, dx), and its cell labels."""
        found = analyze_field(
            image, cells=settings.cells, tta=settings.tta, pixel_size_um=cric_pixel_size(), estimate_scale=False
        )
        result = found.table
        moved = result.assign(centroid_y=result["centroid_y"] + dy, centroid_x=result["centroid_x"] + dx)
        return moved, found.cells.cell_labels()

    def by_iou(first, first_labels, second, second_labels) -> tuple[int, int]:
        """(cells of ``first`` and ``second`` paired at mask IoU > 0.5, of those the same grade)."""
        grade_of = [dict(zip(t["label"].tolist(), grades(t))) for t in (first, second)]
        pairs = [(i, j) for i, j in match_by_iou(first_labels, second_labels) if i in grade_of[0] and j in grade_of[1]]
        return len(pairs), sum(grade_of[0][i] == grade_of[1][j] for i, j in pairs)

    print(
        f"slide {side}², {len(mosaic.placements)} fields, {len(table)} cells in {slide_seconds:.0f} s; match tolerance "
        f"{tolerance:g} px, tile-overlap and field-edge bands {band:g} px, control shift {shift} px"
    )
    print(
        "| field at (y, x) | cells alone | on slide | slide matched | same grade | found one way only: overlap / "
        "edge / elsewhere | other grade: overlap / edge / elsewhere | control: cells shifted | matched | same grade |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    keys = ("alone", "slide", "matched", "same", "shifted", "control", "control_same")
    totals = dict.fromkeys(keys, 0)
    missing_total, regraded_total = {}, {}
    with_nucleus = dict.fromkeys(("alone", "slide", "shifted", "matched", "control"), 0)
    iou = dict.fromkeys(("matched", "same", "control", "control_same"), 0)
    seconds = 0.0
    for index, y0, x0 in mosaic.placements:
        field = fields[index]
        started = time.perf_counter()
        reference, reference_labels = alone(field, y0, x0)
        padded = np.empty((field.shape[0] + shift, field.shape[1] + shift, 3), np.uint8)
        padded[:] = mosaic.glass
        padded[shift:, shift:] = field
        shifted, shifted_labels = alone(padded, y0 - shift, x0 - shift)
        seconds += time.perf_counter() - started
        yx = table[["centroid_y", "centroid_x"]].to_numpy(float)
        on_slide = table[
            (yx[:, 0] >= y0) & (yx[:, 0] < y0 + mosaic.fh) & (yx[:, 1] >= x0) & (yx[:, 1] < x0 + mosaic.fw)
        ]
        pairs = match_by_centroid(centroids(reference), centroids(on_slide), tolerance)
        control = match_by_centroid(centroids(reference), centroids(shifted), tolerance)
        region = slide_cells[y0 : y0 + mosaic.fh, x0 : x0 + mosaic.fw]
        found = by_iou(reference, reference_labels, on_slide, region) + by_iou(
            reference, reference_labels, shifted, shifted_labels[shift:, shift:]
        )
        for key, count in zip(iou, found):
            iou[key] += count
        nucleated = [part[part["nucleus_count"] > 0] for part in (reference, on_slide, shifted)]
        for key, count in zip(
            with_nucleus,
            (
                *map(len, nucleated),
                len(match_by_centroid(centroids(nucleated[0]), centroids(nucleated[1]), tolerance)),
                len(match_by_centroid(centroids(nucleated[0]), centroids(nucleated[2]), tolerance)),
            ),
        ):
            with_nucleus[key] += count
        regraded_pairs = [(i, j) for i, j in pairs if grades(reference)[i] != grades(on_slide)[j]]
        same = len(pairs) - len(regraded_pairs)
        control_same = sum(grades(reference)[i] == grades(shifted)[j] for i, j in control)
        missing = {"overlap": 0, "edge": 0, "elsewhere": 0}
        regraded = dict(missing)
        for part, matched in ((reference, {i for i, _ in pairs}), (on_slide, {j for _, j in pairs})):
            for k, (y, x) in enumerate(centroids(part)):
                if k not in matched:
                    missing[where(y, x, y0, x0)] += 1
        for i, _ in regraded_pairs:
            regraded[where(*centroids(reference)[i], y0, x0)] += 1
        counts = (len(reference), len(on_slide), len(pairs), same, len(shifted), len(control), control_same)
        for key, count in zip(keys, counts):
            totals[key] += count
        for total, part in ((missing_total, missing), (regraded_total, regraded)):
            for key, count in part.items():
                total[key] = total.get(key, 0) + count
        row = [" | ".join(map(str, counts[:4])), " / ".join(map(str, missing.values()))]
        row += [" / ".join(map(str, regraded.values())), " | ".join(map(str, counts[4:]))]
        print(f"| {index} at ({y0}, {x0}) | {' | '.join(row)} |", flush=True)
    print(
        f"| all | {' | '.join(str(totals[k]) for k in keys[:4])} | {' / '.join(map(str, missing_total.values()))} | "
        f"{' / '.join(map(str, regraded_total.values()))} | {' | '.join(str(totals[k]) for k in keys[4:])} |"
    )
    print(
        f"\nslide vs fields alone: {share(totals['matched'], totals['alone'], totals['slide'])} of the cells matched, "
        f"{totals['same'] / max(totals['matched'], 1):.1%} of those with the same grade"
    )
    print(
        f"control (fields alone, shifted vs not): {share(totals['control'], totals['alone'], totals['shifted'])} "
        f"matched, {totals['control_same'] / max(totals['control'], 1):.1%} with the same grade"
    )
    print(
        f"by mask (IoU > 0.5): slide vs fields alone {share(iou['matched'], totals['alone'], totals['slide'])} "
        f"matched, {iou['same'] / max(iou['matched'], 1):.1%} of those with the same grade; control "
        f"{share(iou['control'], totals['alone'], totals['shifted'])}, "
        f"{iou['control_same'] / max(iou['control'], 1):.1%} same grade"
    )
    n = with_nucleus
    print(
        f"cells with a nucleus (the graded ones): slide vs fields alone {share(n['matched'], n['alone'], n['slide'])}"
        f" matched ({n['alone']} alone, {n['slide']} on the slide); control "
        f"{share(n['control'], n['alone'], n['shifted'])} ({n['shifted']} shifted)"
    )
    print(f"share of the fields' area: {band_shares(mosaic, cuts_y, cuts_x, band)}; fields alone took {seconds:.0f} s")


def share(matched: int, first: int, second: int) -> str:
    """Matched cells as a share of both sets' cells: 2 × matched / (first + second)."""
    return f"{2 * matched / max(first + second, 1):.1%}"


def band_shares(mosaic: FieldMosaic, cuts_y, cuts_x, band: float) -> str:
    """How much of the fields' area lies in each band: what a difference spread evenly would show."""
    counts = {"overlap": 0, "edge": 0, "elsewhere": 0}
    ys, xs = np.arange(mosaic.fh) + 0.5, np.arange(mosaic.fw) + 0.5
    edge = (np.minimum(ys, mosaic.fh - ys)[:, None] < band) | (np.minimum(xs, mosaic.fw - xs)[None, :] < band)
    for _, y0, x0 in mosaic.placements:
        near_y = np.abs((ys + y0)[:, None] - cuts_y[None, :]).min(axis=1, initial=np.inf) < band
        near_x = np.abs((xs + x0)[:, None] - cuts_x[None, :]).min(axis=1, initial=np.inf) < band
        overlap = near_y[:, None] | near_x[None, :]
        counts["overlap"] += int(overlap.sum())
        counts["edge"] += int((edge & ~overlap).sum())
        counts["elsewhere"] += int((~edge & ~overlap).sum())
    total = sum(counts.values())
    return ", ".join(f"{key} {count / total:.0%}" for key, count in counts.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", required=True, help="folder of RGB field images to mosaic")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 32768])
    parser.add_argument("--compare-workers-at", type=int, default=4096, help="slide side for the 2-vs-1 worker run")
    parser.add_argument("--seed", type=int, default=0, help="of the mosaic's layout")
    parser.add_argument(
        "--versus-fields", action="store_true", help="compare a mosaic's cells and grades with its fields' alone"
    )
    parser.add_argument("--versus-side", type=int, default=4096, help="slide side for --versus-fields")
    parser.add_argument(
        "--tolerance", type=float, default=25.0, help="centroid distance (px) of matched cells (a CRIC cell: ~110 px)"
    )
    args = parser.parse_args(argv)
    fields = read_fields(args.fields)
    if args.versus_fields:
        versus_fields(fields, args.versus_side, args.seed, args.tolerance)
    else:
        scale_table(fields, args.sizes, args.compare_workers_at, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
