"""The slide pipeline: tissue tiles → the per-field pipeline → one table and one label pyramid per slide.

:func:`analyze_slide` (the console form; ``napari-cervix analyze`` calls it) walks a slide's tissue in
overlapping tiles of full resolution. Each tile runs :func:`~napari_cervix.field.analyze_field`, the
*Analyze field* widget's own pipeline with its defaults (the semantic model's nuclei and cells, or the
instance model's with ``cells="instances"``; measurements; Bethesda grades on RGB) — and **owns** the
cells whose centroid lies in its core (the tile minus half the overlap on each inner side), so a cell seen
by two tiles is kept once, whole, from the tile that saw it with the most context; the overlap must
exceed a cell's diameter.

Memory stays flat: a tile's pixels are read from the slide by whoever processes it (never sent through a
scheduler), and each finished tile is written at once by that same process (``tiles/<index>.parquet``
with its cells' table, ``tiles/<index>.npz`` with their cropped masks), atomically, so on a cluster the
output folder must be reachable from the workers, as the slide is. Rerunning the same command skips
finished tiles, so a killed run loses only the tiles in flight; cell ids are given at the end in tile
order, so the final table equals an uninterrupted run's. An output folder made for another slide or other
settings is refused. The slide is opened read-only.

Tiles run in this process, or on a ``dask.distributed`` cluster: a ``LocalCluster`` on this machine
(``workers=N``) or the user's own (``scheduler="tcp://host:port"`` or ``client=``). Each worker process
opens the slide and loads the models once.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .classes import BETHESDA_GRADES, NOT_SQUAMOUS
from .cli import Command, add_scale_arguments, scale_options
from .io._atomic import atomic_path
from .tiling import Tile, tile_grid
from .tissue import TissueMask, detect_tissue

RUN_FILE = "run.json"
TILES = "tiles"
LABELS = "labels.ome.zarr"
LABEL_CHUNK = 1024
LABEL_BLOCK = 8 * LABEL_CHUNK  # columns of level-0 labels painted in memory at once (32 MB of uint32)


class SlideOutputError(ValueError):
    """An output folder that belongs to another slide or other settings."""


@dataclass(frozen=True)
class SlideSettings:
    """Everything that decides a slide's results (a rerun must use the same, or a new output folder)."""

    tile_size: int = 1024
    overlap: int = 256
    cells: str = "semantic"  # analyze_field's cell source: "semantic" (its default) or "instances"
    semantic_model: str = "default"
    instance_model: str = "default"
    classifier: str | None = None  # the Herlev 7-class opinion (analyze_field's herlev_model); None: skip
    score_threshold: float = 0.5  # the instance model's (cells="instances")
    tta: int | None = None  # the grader's test-time views; None: its card's, as analyze_field
    tissue_side: int = 2048
    grading_model: str | None = "default"  # Bethesda grader for RGB tiles (there is none for gray); None: skip
    # µm per pixel of level 0 when the file's metadata lacks it or is wrong; None: the metadata's. Tiles are
    # resampled to the models' pixel size; a slide of unknown pixel size runs as it is (not estimated per
    # tile: every tile must run at the same scale).
    pixel_size_um: float | None = None


@dataclass(frozen=True)
class SlideProgress:
    done: int
    total: int
    cells: int
    seconds: float

    @property
    def eta_seconds(self) -> float | None:
        return self.seconds / self.done * (self.total - self.done) if self.done else None


@dataclass
class SlideResult:
    table: pd.DataFrame
    out: Path
    summary: dict = field(default_factory=dict)


def tile_cores(tiles: list[Tile], shape) -> list[tuple[int, int, int, int]]:
    """Each tile's core (y0, y1, x0, x1): its area up to the middle of the overlap with each neighbour.
    The cores of a grid tile the image exactly, so each point belongs to exactly one core."""
    height, width = int(shape[0]), int(shape[1])
    ys = sorted({(t.y0, t.y1) for t in tiles})
    xs = sorted({(t.x0, t.x1) for t in tiles})

    def cuts(spans, size):
        bounds = [0] + [(spans[i][1] + spans[i + 1][0]) // 2 for i in range(len(spans) - 1)] + [size]
        return {span: (bounds[i], bounds[i + 1]) for i, span in enumerate(spans)}

    row_cut, col_cut = cuts(ys, height), cuts(xs, width)
    return [(*row_cut[(t.y0, t.y1)], *col_cut[(t.x0, t.x1)]) for t in tiles]


@dataclass(frozen=True)
class SlideTiles:
    """A slide's tile grid, each tile's core, and the indices of the tiles the tissue mask covers (the
    only ones analyzed)."""

    grid: list[Tile]
    cores: list[tuple[int, int, int, int]]
    todo: list[int]
    tissue: TissueMask


def slide_grid(shape, settings: SlideSettings) -> tuple[list[Tile], list[tuple[int, int, int, int]]]:
    """The slide's tile grid with these settings and each tile's core."""
    grid = tile_grid(shape, settings.tile_size, settings.overlap)
    return grid, tile_cores(grid, shape)


def tissue_tiles(slide, settings: SlideSettings) -> SlideTiles:
    """The tiles of an opened slide that :func:`analyze_slide` runs with these settings."""
    tissue = detect_tissue(slide, settings.tissue_side)
    grid, cores = slide_grid(slide.shape, settings)
    todo = [i for i, t in enumerate(grid) if tissue.covers(t.y0, t.x0, t.y1, t.x1)]
    return SlideTiles(grid, cores, todo, tissue)


# ----------------------------------------------------------------------------------------- one tile
_loaded: dict[tuple, object] = {}


def _once(load: Callable, *args):
    """``load(*args)``, called once per process: workers reuse the open slide and every model for all
    their tiles instead of rebuilding a network per tile."""
    key = (load.__module__, load.__qualname__, *args)
    if key not in _loaded:
        _loaded[key] = load(*args)
    return _loaded[key]


def _models(settings: SlideSettings, color: str) -> dict:
    """The tile's models, loaded once per process (the ``*_model`` arguments of analyze_field)."""
    from .cells.classifier import load_classifier, load_grader
    from .instances.model import load_detector
    from .semantic.inference import load_semantic_model

    models = {"grading_model": None, "herlev_model": None}
    if settings.cells == "instances":
        models["instance_model"] = _once(load_detector, settings.instance_model)
    else:
        models["semantic_model"] = _once(load_semantic_model, settings.semantic_model, color)
    if settings.grading_model is not None and color == "rgb":  # there is no gray grader
        models["grading_model"] = _once(load_grader, settings.grading_model)
    if settings.classifier is not None:
        models["herlev_model"] = _once(load_classifier, settings.classifier, color)
    return models


def analyze_tile(path: str, tile: Tile, core, settings: SlideSettings) -> dict:
    """The cells a tile owns (centroid in its core): their table (slide coordinates) and cropped cell and
    nucleus masks — from :func:`~napari_cervix.field.analyze_field`, the widgets' own pipeline."""
    from .field import analyze_field_steps
    from .imaging import color_kind
    from .io.slides import open_slide
    from .tiling import run_to_end

    slide = _once(open_slide, path)
    image = slide.read(0, tile.slices)
    cy0, cy1, cx0, cx1 = core

    def owned(centres: np.ndarray) -> np.ndarray:
        y, x = centres[:, 0] + tile.y0, centres[:, 1] + tile.x0
        return (cy0 <= y) & (y < cy1) & (cx0 <= x) & (x < cx1)

    steps = analyze_field_steps(
        image,
        cells=settings.cells,
        **_models(settings, color_kind(image)),
        tta=settings.tta,
        pixel_size_um=settings.pixel_size_um or slide.pixel_size_um,
        estimate_scale=False,  # every tile at the same scale: the slide's
        score_threshold=settings.score_threshold,
        select=owned,
    )
    found = run_to_end(steps)
    cells, table = found.cells, found.table
    offsets = {"centroid_y": tile.y0, "centroid_x": tile.x0, "bbox_y0": tile.y0, "bbox_y1": tile.y0}
    offsets.update({"bbox_x0": tile.x0, "bbox_x1": tile.x0})
    for column, offset in offsets.items():
        if column in table.columns:
            table[column] = table[column] + offset
    table.insert(0, "tile_cell", table.pop("label").astype(np.int32))
    table.attrs = {}  # the field's triage is not the slide's
    boxes = np.asarray(cells.boxes, np.int64).reshape(-1, 4) + [tile.y0, tile.x0, tile.y0, tile.x0]
    masks = [mask for _, _, mask in cells]
    nuclei = list(cells.nuclei)
    return {
        "table": table,
        "ids": np.asarray(cells.ids, np.int32),
        "boxes": boxes,
        "masks": masks,
        "nucleus_boxes": np.asarray([b for b, _ in nuclei], np.int64).reshape(-1, 4) + [tile.y0, tile.x0] * 2,
        "nucleus_masks": [m for _, m in nuclei],
        "nucleus_cells": np.asarray(cells.nucleus_cell_ids, np.int32),
    }


def analyze_tile_to(folder: str, index: int, path: str, tile: Tile, core, settings: SlideSettings) -> int:
    """:func:`analyze_tile`, written to ``folder`` by the process that ran it (a worker, on a cluster: the
    output folder must be reachable from the workers, as the slide is); returns the number of cells.
    Writing where the tile ran keeps the masks out of the scheduler and the client's process off the cores
    the workers need. When and where the tile ran is kept with it (:func:`tile_timings`)."""
    started, clock = time.time(), time.perf_counter()
    result = analyze_tile(path, tile, core, settings)
    result["timing"] = np.array([started, time.perf_counter() - clock])
    result["worker"] = np.array(f"{socket.gethostname()}:{os.getpid()}")
    _write_tile(Path(folder), index, result)
    return len(result["table"])


def _pack(masks: list[np.ndarray]) -> dict:
    shapes = np.asarray([m.shape for m in masks], np.int64).reshape(-1, 2)
    flat = np.concatenate([m.ravel() for m in masks]) if masks else np.zeros(0, bool)
    return {"shapes": shapes, "bits": np.packbits(flat)}


def _unpack(shapes: np.ndarray, bits: np.ndarray) -> list[np.ndarray]:
    sizes = shapes.prod(axis=1)
    flat = np.unpackbits(bits, count=int(sizes.sum())).astype(bool)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return [flat[starts[i] : starts[i + 1]].reshape(shapes[i]) for i in range(len(shapes))]


def _write_tile(folder: Path, index: int, result: dict) -> None:
    """Masks first, table last: the table's existence is what marks the tile as done."""
    cells, nuclei = _pack(result["masks"]), _pack(result["nucleus_masks"])
    with atomic_path(folder / f"{index:06d}.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            ids=result["ids"],
            boxes=result["boxes"],
            shapes=cells["shapes"],
            bits=cells["bits"],
            nucleus_boxes=result["nucleus_boxes"],
            nucleus_shapes=nuclei["shapes"],
            nucleus_bits=nuclei["bits"],
            nucleus_cells=result["nucleus_cells"],
            timing=result["timing"],
            worker=result["worker"],
        )
    with atomic_path(folder / f"{index:06d}.parquet") as tmp:
        result["table"].to_parquet(tmp, index=False)


def tile_timings(out) -> pd.DataFrame:
    """One row per finished tile of a slide-analysis output folder: ``tile`` (grid index), ``worker``
    (host:pid of the process that ran it), ``started`` (Unix time) and ``seconds`` (the tile's analysis,
    reading its pixels included, writing excluded), in the order the tiles started."""
    rows = []
    for npz in sorted((Path(out) / TILES).glob("*.npz")):
        with np.load(npz) as saved:
            if "timing" in saved:
                started, seconds = saved["timing"].tolist()
                rows.append((int(npz.stem), str(saved["worker"]), started, seconds))
    frame = pd.DataFrame(rows, columns=["tile", "worker", "started", "seconds"])
    return frame.sort_values("started", ignore_index=True)


# ---------------------------------------------------------------------------------------- the run
def _fingerprint(slide, settings: SlideSettings) -> dict:
    stat = slide.path.stat()
    return {
        "slide": str(slide.path.resolve()),
        "slide_shape": list(slide.shape),
        "slide_bytes": stat.st_size if slide.path.is_file() else None,
        "settings": asdict(settings),
    }


def _claim(out: Path, fingerprint: dict) -> None:
    run_file = out / RUN_FILE
    if run_file.exists():
        saved = json.loads(run_file.read_text())
        if saved.get("fingerprint") != fingerprint:
            differ = [k for k in fingerprint if saved.get("fingerprint", {}).get(k) != fingerprint[k]]
            raise SlideOutputError(
                f"{out} holds results of another run (different {', '.join(differ) or 'format'}); "
                "choose a new output folder or delete that one"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise SlideOutputError(f"{out} is not empty and is not a slide-analysis output folder; choose another")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_file) as tmp:
        tmp.write_text(json.dumps({"fingerprint": fingerprint, "napari_cervix": __version__}, indent=2))


def analyze_slide_steps(
    source,
    out,
    settings: SlideSettings | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client=None,
) -> Generator[SlideProgress, None, SlideResult]:
    """Generator form of :func:`analyze_slide`: yields a :class:`SlideProgress` per finished tile."""
    from .io.slides import open_slide

    settings = settings or SlideSettings()
    started = time.perf_counter()
    slide = open_slide(source)
    out = Path(out)
    _claim(out, _fingerprint(slide, settings))
    tiles_dir = out / TILES
    tiles_dir.mkdir(exist_ok=True)
    tiles = tissue_tiles(slide, settings)
    grid, cores, todo, tissue = tiles.grid, tiles.cores, tiles.todo, tiles.tissue
    seconds = {"tissue": time.perf_counter() - started}
    pending = [i for i in todo if not (tiles_dir / f"{i:06d}.parquet").exists()]
    done, cells = len(todo) - len(pending), 0
    yield SlideProgress(done, len(todo), cells, time.perf_counter() - started)
    path = str(slide.path)
    for found in _run_tiles(str(tiles_dir), path, grid, cores, pending, settings, workers, scheduler, client):
        done, cells = done + 1, cells + found
        yield SlideProgress(done, len(todo), cells, time.perf_counter() - started)
    seconds["tiles"] = time.perf_counter() - started - sum(seconds.values())
    table = _collect(tiles_dir, todo, slide)
    summary = {
        "slide": slide.path.name,
        "shape": list(slide.shape[:2]),
        "pixel_size_um": slide.pixel_size_um,
        "tiles": len(grid),
        "tiles_with_tissue": len(todo),
        "tissue_fraction": round(tissue.fraction, 4),
        "skipped_fraction": round(1 - len(todo) / max(len(grid), 1), 4),
        "cells": len(table),
        "seconds_this_run": round(time.perf_counter() - started, 1),
    }
    if "herlev_class" in table.columns:  # the optional Herlev opinion
        summary["per_herlev_class"] = {str(k): int(v) for k, v in table["herlev_class"].value_counts().items()}
    if "bethesda_class" in table.columns:  # graded tiles; gray ones carry no grade
        counts = table["bethesda_class"].value_counts()
        summary["per_bethesda_class"] = {c: int(counts.get(c, 0)) for c in [*BETHESDA_GRADES, NOT_SQUAMOUS]}
    if "reviewable" in table.columns:
        summary["reviewable"] = int(table["reviewable"].fillna(False).astype(bool).sum())
    with atomic_path(out / "cells.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    seconds["table"] = time.perf_counter() - started - sum(seconds.values())
    write_label_pyramids(out / LABELS, slide, tiles_dir, todo, slide.pixel_size_um, n_cells=len(table))
    seconds["labels"] = time.perf_counter() - started - sum(seconds.values())
    # Where this run's time went: tissue mask, tiles (incl. starting the workers), table, label pyramids.
    summary["seconds_by_step"] = {step: round(value, 1) for step, value in seconds.items()}
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return SlideResult(table, out, summary)


def local_cluster(workers: int):
    """A ``LocalCluster`` of ``workers`` single-threaded worker processes, with glibc's malloc left at
    its defaults. dask's nannies set ``MALLOC_TRIM_THRESHOLD_`` (to hand freed memory back to the OS), and
    glibc then stops raising its mmap threshold, so every large temporary array of a tile is mapped,
    page-faulted and unmapped again: one worker ran 1.4–1.8× slower on a 2-core machine (README, *Whole
    slides*). A worker holds one tile at a time, so memory stays flat without it."""
    import dask
    from dask.distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)


def _run_tiles(folder, path, grid, cores, pending, settings, workers, scheduler, client):
    """The number of cells of each pending tile, as they finish and are written to ``folder``: in this
    process or on a dask cluster."""
    if client is None and scheduler is None and not workers:
        for index in pending:
            yield analyze_tile_to(folder, index, path, grid[index], cores[index], settings)
        return
    from dask.distributed import Client, as_completed

    own = None
    if client is None:
        if scheduler is not None:
            own = client = Client(scheduler)
        else:
            cluster = local_cluster(int(workers))
            own = client = Client(cluster)
    try:
        futures = [
            client.submit(
                analyze_tile_to, folder, i, path, grid[i], cores[i], settings, key=f"tile-{i}-{time.time_ns()}"
            )
            for i in pending
        ]
        for future in as_completed(futures):
            yield future.result()
            future.release()
    finally:
        if own is not None:
            cluster = own.cluster
            own.close()
            if cluster is not None:
                cluster.close()


def _collect(tiles_dir: Path, todo: list[int], slide) -> pd.DataFrame:
    """The slide's table: tiles in grid order, cell ids 1..N in that order (independent of finishing order)."""
    parts = [pd.read_parquet(tiles_dir / f"{i:06d}.parquet").assign(tile=i) for i in todo]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({"label": pd.Series([], dtype=np.int64)})
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "label", np.arange(1, len(table) + 1))
    if slide.pixel_size_um:
        table["centroid_y_um"] = table["centroid_y"] * slide.pixel_size_um
        table["centroid_x_um"] = table["centroid_x"] * slide.pixel_size_um
    return table


# ------------------------------------------------------------------------------------------ labels
def _paint_smallest_wins(target, origin, box, mask, value: int, area: int, area_of: np.ndarray) -> None:
    """Paint the part of one object inside ``target`` (a numpy block whose corner is at ``origin`` on the
    slide): a pixel already held by a smaller object keeps it — the same overlap rule as
    :meth:`~napari_cervix.cellset.CellSet.cell_labels`, independent of order."""
    y0, x0, y1, x1 = (int(v) for v in box)
    oy, ox = origin
    ty0, tx0 = max(y0, oy), max(x0, ox)
    ty1, tx1 = min(y1, oy + target.shape[0]), min(x1, ox + target.shape[1])
    if ty0 >= ty1 or tx0 >= tx1:
        return
    region = target[ty0 - oy : ty1 - oy, tx0 - ox : tx1 - ox]  # a view: painted in place
    part = mask[ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0]
    take = part & ((region == 0) | (area_of[np.minimum(region, len(area_of) - 1)] > area))
    region[take] = value


def _tile_objects(tiles_dir: Path, index: int, first: int, area_of: np.ndarray) -> dict:
    """One finished tile's cells and nuclei as (boxes, masks, global ids); records each cell's area."""
    with np.load(tiles_dir / f"{index:06d}.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    cells = _unpack(arrays["shapes"], arrays["bits"])
    nuclei = _unpack(arrays["nucleus_shapes"], arrays["nucleus_bits"])
    cell_ids = np.arange(first, first + len(cells))
    area_of[cell_ids] = [mask.sum() for mask in cells]
    local_to_global = {int(i): first + k for k, i in enumerate(arrays["ids"])}
    # a nucleus in no owned cell belongs to a cell another tile owns, or to none: not painted
    owners = np.asarray([local_to_global.get(int(o), 0) for o in arrays["nucleus_cells"]], np.int64)
    keep = np.flatnonzero(owners > 0)
    return {
        "cells": (arrays["boxes"].reshape(-1, 4), cells, cell_ids),
        "nuclei": (arrays["nucleus_boxes"].reshape(-1, 4)[keep], [nuclei[k] for k in keep], owners[keep]),
    }


def _paint_labels(arrays: dict, tiles_dir: Path, todo: list[int], n_cells: int) -> None:
    """Level 0 of the cell and nucleus labels (``arrays``: name → zarr array), painted in memory one
    block of LABEL_CHUNK rows × LABEL_BLOCK columns at a time from the tiles that reach it (in grid
    order), each block written once: memory is a block and the tiles of about two tile rows, and no
    chunk is decompressed and compressed again per object."""
    height, width = arrays["cells"].shape
    extents, firsts, next_id = [], [], 1
    for index in todo:  # only the boxes: which rows each tile's objects reach
        with np.load(tiles_dir / f"{index:06d}.npz") as npz:
            boxes = np.concatenate([npz["boxes"].reshape(-1, 4), npz["nucleus_boxes"].reshape(-1, 4)])
            count = len(npz["ids"])
        extents.append((int(boxes[:, 0].min()), int(boxes[:, 2].max())) if len(boxes) else (0, 0))
        firsts.append(next_id)
        next_id += count
    area_of = np.zeros(n_cells + 2, np.int64)  # by global id; the table has one row per owned cell
    loaded: dict[int, dict] = {}
    for b0 in range(0, height, LABEL_CHUNK):
        b1 = min(b0 + LABEL_CHUNK, height)
        for k in [k for k in loaded if extents[k][1] <= b0]:
            del loaded[k]  # bands go down the slide: this tile's objects lie above
        active = [k for k, (e0, e1) in enumerate(extents) if e0 < b1 and e1 > b0]
        for k in active:
            if k not in loaded:
                loaded[k] = _tile_objects(tiles_dir, todo[k], firsts[k], area_of)
        for c0 in range(0, width, LABEL_BLOCK):
            c1 = min(c0 + LABEL_BLOCK, width)
            for name, target in arrays.items():
                block = np.zeros((b1 - b0, c1 - c0), np.uint32)
                for k in active:
                    boxes, masks, ids = loaded[k][name]
                    near = (boxes[:, 0] < b1) & (boxes[:, 2] > b0) & (boxes[:, 1] < c1) & (boxes[:, 3] > c0)
                    for j in np.flatnonzero(near):
                        # a nucleus is painted with its cell's id and compared by its cell's area
                        _paint_smallest_wins(block, (b0, c0), boxes[j], masks[j], ids[j], area_of[ids[j]], area_of)
                if block.any():
                    target[b0:b1, c0:c1] = block


def write_label_pyramids(path: Path, slide, tiles_dir: Path, todo: list[int], pixel_size_um, n_cells: int) -> None:
    """Cell and nucleus labels (global cell ids; nuclei carry their cell's id) as a multiscale OME-Zarr
    labels group, painted block by block (:func:`_paint_labels`) and downsampled band by band."""
    import shutil

    import zarr

    from .io.slides import level_shapes

    shape = tuple(slide.shape[:2])
    scratch = path.with_name(path.name + ".partial")
    if scratch.exists():
        shutil.rmtree(scratch)
    root = zarr.open_group(str(scratch), mode="w")
    names = ("cells", "nuclei")
    levels = {
        name: [root.create_array(f"{name}/0", shape=shape, chunks=(LABEL_CHUNK,) * 2, dtype=np.uint32, fill_value=0)]
        for name in names
    }
    _paint_labels({name: levels[name][0] for name in names}, tiles_dir, todo, n_cells)
    shapes = level_shapes(shape, 512)
    for name in names:
        for k, level_shape in enumerate(shapes[1:], start=1):
            level = root.create_array(f"{name}/{k}", shape=level_shape, chunks=(LABEL_CHUNK,) * 2, dtype=np.uint32)
            previous = levels[name][-1]
            for y0 in range(0, level_shape[0], LABEL_CHUNK):  # labels downsample by taking every 2nd pixel
                rows = np.asarray(previous[2 * y0 : 2 * (y0 + LABEL_CHUNK) : 2, : 2 * level_shape[1] : 2])
                level[y0 : y0 + rows.shape[0]] = rows
            levels[name].append(level)
        pixel = pixel_size_um or 1.0
        unit = {"unit": "micrometer"} if pixel_size_um else {}
        root[name].attrs["multiscales"] = [
            {
                "version": "0.4",
                "name": name,
                "axes": [{"name": a, "type": "space", **unit} for a in "yx"],
                "datasets": [
                    {"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [pixel * 2**k] * 2}]}
                    for k in range(len(shapes))
                ],
            }
        ]
        root[name].attrs["image-label"] = {"version": "0.4", "source": {"image": str(slide.path)}}
    root.attrs["labels"] = list(names)
    if path.exists():
        shutil.rmtree(path)
    scratch.rename(path)  # the finished pyramid appears under its name at once


def analyze_slide(
    source,
    out,
    settings: SlideSettings | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client=None,
    progress: Callable[[SlideProgress], None] | None = None,
) -> SlideResult:
    """Analyze a whole slide (a file :func:`~napari_cervix.io.slides.open_slide` reads) into ``out``.

    ``settings``: tile size, overlap, models (see :class:`SlideSettings`). ``workers``: run tiles on a
    ``LocalCluster`` of that many single-threaded worker processes; ``scheduler`` / ``client``: on an
    existing dask cluster. Returns the per-cell table (also ``out/cells.parquet``) and the summary
    (``out/summary.json``). Rerunning with the same arguments resumes.
    """
    from .tiling import run_to_end

    return run_to_end(
        analyze_slide_steps(source, out, settings, workers=workers, scheduler=scheduler, client=client), progress
    )


# ------------------------------------------------------------------------------------------------ CLI
def _add_arguments(p) -> None:
    p.add_argument(
        "slides",
        nargs="+",
        metavar="IMAGE_OR_SLIDE",
        help="fields (JPEG/PNG/BMP, small single-level TIFF: analyze_field) or slides (pyramidal TIFF/OME-TIFF/SVS, "
        "OME-Zarr, vendor: the tiled slide pipeline), or folders of them",
    )
    p.add_argument("--out", required=True, help="output folder (one subfolder per input when several are given)")
    defaults = SlideSettings()
    p.add_argument("--tile-size", type=int, default=defaults.tile_size)
    p.add_argument("--overlap", type=int, default=defaults.overlap, help="must exceed a cell's diameter (px)")
    p.add_argument(
        "--cells",
        choices=("semantic", "instances"),
        default=defaults.cells,
        help="where cells come from: the semantic model + nucleus-seeded watershed (default) or the instance model",
    )
    p.add_argument("--semantic-model", default=defaults.semantic_model)
    p.add_argument("--instance-model", default=defaults.instance_model)
    p.add_argument(
        "--classifier",
        default=defaults.classifier,
        help="also add this Herlev 7-class classifier's opinion ('default': the one for the image's color)",
    )
    p.add_argument("--score-threshold", type=float, default=defaults.score_threshold, help="--cells instances")
    p.add_argument(
        "--tta",
        type=int,
        help="test-time views of the grader per cell (1-8); the model's own by default",
    )
    p.add_argument("--workers", type=int, help="run tiles on a local dask cluster of N worker processes")
    p.add_argument("--scheduler", help="address of an existing dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--csv", action="store_true", help="also write cells.csv")
    add_scale_arguments(p)


def _slide_sources(names) -> list[Path]:
    from .field import FIELD_SUFFIXES
    from .io.slides import slide_format

    sources = []
    for name in map(Path, names):
        if name.is_dir() and slide_format(name) is None:
            sources += sorted(
                p for p in name.iterdir() if slide_format(p) is not None or p.suffix.lower() in FIELD_SUFFIXES
            )
        else:
            sources.append(name)
    return sources


def _run(args) -> int:
    import sys

    from .io.slides import SlideError

    settings = SlideSettings(
        tile_size=args.tile_size,
        overlap=args.overlap,
        cells=args.cells,
        semantic_model=args.semantic_model,
        instance_model=args.instance_model,
        classifier=None if str(args.classifier).lower() == "none" else args.classifier,
        score_threshold=args.score_threshold,
        tta=args.tta,
        pixel_size_um=args.pixel_size,
    )
    sources = _slide_sources(args.slides)
    if not sources:
        print("error: no slide files found", file=sys.stderr)
        return 2
    status = 0
    for source in sources:
        out = Path(args.out) if len(sources) == 1 else Path(args.out) / source.name.split(".")[0]
        if _is_field(source):
            status = max(status, _run_field(source, out, args))
            continue

        def report(step: SlideProgress, name=source.name) -> None:
            eta = f", about {step.eta_seconds / 60:.1f} min left" if step.eta_seconds is not None else ""
            print(f"\r{name}: {step.done}/{step.total} tiles, {step.cells} cells{eta}   ", end="", file=sys.stderr)

        try:
            result = analyze_slide(
                source, out, settings, workers=args.workers, scheduler=args.scheduler, progress=report
            )
        except (SlideError, SlideOutputError, OSError) as err:
            print(f"\nerror: {source}: {err}", file=sys.stderr)
            status = 1
            continue
        if args.csv:
            with atomic_path(out / "cells.csv") as tmp:
                result.table.to_csv(tmp, index=False)
        print(f"\n{json.dumps(result.summary)}")
    return status


def _is_field(source: Path) -> bool:
    from .field import is_field_image

    try:
        return source.is_file() and is_field_image(source)
    except Exception:  # unreadable TIFF: the slide reader gives the clear message
        return False


def _run_field(source: Path, out: Path, args) -> int:
    """One field through analyze_field: labels, table, overlay and summary in ``out``."""
    import sys

    from .field import analyze_field, write_field_outputs
    from .imaging import ImageError
    from .io.images import read_image

    classifier = None if str(args.classifier).lower() == "none" else args.classifier
    try:
        image = read_image(source)
        result = analyze_field(
            image,
            cells=args.cells,
            semantic_model=args.semantic_model,
            instance_model=args.instance_model,
            herlev_model=classifier,
            tta=args.tta,
            score_threshold=args.score_threshold,
            **scale_options(args),
        )
    except (ImageError, OSError, ValueError) as err:
        print(f"error: {source}: {err}", file=sys.stderr)
        return 1
    write_field_outputs(image, result, out)
    print(json.dumps({"field": source.name, "out": str(out), **result.summary}, default=str))
    return 0


COMMANDS = [
    Command(
        "analyze",
        None,
        "analyze fields (one call: cells, Bethesda grades, triage) and whole slides (tiled, resumable)",
        _add_arguments,
        _run,
    )
]


# ---------------------------------------------------------------------------------------- results
def open_results(out) -> tuple:
    """(slide, table) of a finished slide-analysis folder: the slide it was made from (opened lazily, from
    ``run.json``) and ``cells.parquet``."""
    from .io.slides import open_slide

    out = Path(out)
    if not (out / RUN_FILE).exists() or not (out / "cells.parquet").exists():
        raise SlideOutputError(f"{out} is not a finished slide-analysis folder (no {RUN_FILE} / cells.parquet)")
    fingerprint = json.loads((out / RUN_FILE).read_text())["fingerprint"]
    table = pd.read_parquet(out / "cells.parquet")
    settings = fingerprint.get("settings", {})
    table.attrs["models"] = {k: str(settings[k]) for k in ("instance_model", "classifier") if k in settings}
    return open_slide(fingerprint["slide"]), table


def results_layers(out) -> list[tuple]:
    """napari layer tuples for a slide-analysis folder: the slide (multiscale) and a Points layer of cell
    centroids carrying the table as ``features`` (colored by predicted class), both in µm when known."""
    from ._slide_reader import slide_layer

    slide, table = open_results(out)
    image = slide_layer(slide)
    scale = image[1].get("scale", (1.0, 1.0))
    points = table[["centroid_y", "centroid_x"]].to_numpy(np.float64)
    kwargs = {
        "name": f"{slide.path.name} cells",
        "features": table,
        "size": 12,
        "scale": scale,
        "border_width": 0,
        "metadata": {"results_path": str(Path(out)), "slide_path": str(slide.path), "models": table.attrs["models"]},
    }
    if "bethesda_class" in table.columns and table["bethesda_class"].notna().any():
        from .field import grade_colors

        kwargs["face_color"] = [(*rgb, 1.0) for rgb in grade_colors(table)]  # the Analyze field colors
    elif "herlev_class" in table.columns and len(table):
        kwargs["face_color"] = "herlev_class"
    return [image, (points, kwargs, "points")]
