"""Whole slides, opened lazily: a pyramid of array-likes (full resolution first) plus the pixel size in µm.

A digitized Pap smear is 20,000–100,000 pixels a side; nothing here reads pixels until they are sliced.
Each level is a dask array over the file's own tiles, so napari shows a multiscale layer that reads only
what is on screen, and the slide pipeline reads one tile at a time. Files are opened read-only.

Formats are rows of :data:`SLIDE_FORMATS` (adding one is a function plus one line):

* pyramidal TIFF, OME-TIFF, Aperio SVS — tifffile's zarr store;
* OME-Zarr (NGFF multiscales) — zarr;
* vendor formats (NDPI, MRXS, SCN, …) — OpenSlide, when the optional ``slides`` extra is installed.

:func:`write_ome_tiff` writes a pyramidal OME-TIFF tile by tile from any array-like (test slides, results).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TILE = 512


class SlideError(ValueError):
    """A file that cannot be opened as a slide; the message says which and why."""


@dataclass(frozen=True)
class Slide:
    """A slide's pyramid. ``levels[0]`` is full resolution; every level is (H, W) or (H, W, C)."""

    path: Path
    levels: tuple
    pixel_size_um: float | None  # of level 0; None when the file does not say
    format: str
    metadata: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.levels[0].shape)

    @property
    def rgb(self) -> bool:
        return len(self.shape) == 3 and self.shape[-1] in (3, 4)

    @property
    def downsamples(self) -> tuple[float, ...]:
        """Each level's pixel size relative to level 0 (1.0, ~2.0, ~4.0, …)."""
        return tuple(self.shape[0] / level.shape[0] for level in self.levels)

    def read(self, level: int, slices) -> np.ndarray:
        """Pixels of ``levels[level][slices]``, read in this thread: the file's store holds locks and
        cannot travel to a dask.distributed scheduler a user may have active (and needs none)."""
        return read_region(self.levels[level], slices)

    def level_for(self, max_side: int) -> int:
        """The finest level whose longer side is at most ``max_side`` (the coarsest if none is)."""
        for index, level in enumerate(self.levels):
            if max(level.shape[:2]) <= max_side:
                return index
        return len(self.levels) - 1


def read_region(array, slices) -> np.ndarray:
    """``array[slices]`` as numpy; a dask array is computed here, with the synchronous scheduler."""
    part = array[slices]
    return part.compute(scheduler="synchronous") if hasattr(part, "dask") else np.asarray(part)


def _dask_from_zarr(array):
    import dask.array as da

    return da.from_zarr(array)


# ----------------------------------------------------------------------------------------- TIFF / SVS
_SVS_MPP = re.compile(r"MPP\s*=\s*([0-9.]+)")
_CM_PER_UNIT = {2: 2.54, 3: 1.0}  # TIFF ResolutionUnit: 2 inch, 3 centimetre


def _tiff_pixel_size(tif) -> float | None:
    """µm per pixel from OME-XML, an Aperio description or the TIFF resolution tags, in that order."""
    if tif.is_ome and tif.ome_metadata:
        found = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tif.ome_metadata)
        unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', tif.ome_metadata)
        if found and (unit is None or unit.group(1) in ("µm", "um", "micron", "micrometer")):
            return float(found.group(1))
    page = tif.pages[0]
    description = page.tags.get("ImageDescription")
    if description is not None and (mpp := _SVS_MPP.search(str(description.value))):
        return float(mpp.group(1))
    resolution, unit = page.tags.get("XResolution"), page.tags.get("ResolutionUnit")
    if resolution is not None and unit is not None and int(unit.value) in _CM_PER_UNIT:
        numerator, denominator = resolution.value
        if numerator and denominator and numerator / denominator > 1:  # 1 pixel per unit means "not set"
            return _CM_PER_UNIT[int(unit.value)] * 1e4 * denominator / numerator
    return None


def _open_tiff(path: Path) -> Slide:
    import tifffile
    import zarr

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            pixel_size = _tiff_pixel_size(tif)
            axes = series.axes
            kind = "svs" if tif.is_svs else "ome-tiff" if tif.is_ome else "tiff"
            n_levels = len(series.levels)
    except tifffile.TiffFileError as err:
        raise SlideError(f"{path} is not a readable TIFF: {err}") from err
    if axes not in ("YX", "YXS"):
        raise SlideError(f"{path}: axes {axes!r} are not a 2-D gray or RGB slide (YX or YXS)")
    store = tifffile.imread(path, aszarr=True, series=0)
    root = zarr.open(store, mode="r")
    arrays = [root] if n_levels == 1 else [root[str(k)] for k in range(n_levels)]
    return Slide(path, tuple(_dask_from_zarr(a) for a in arrays), pixel_size, kind)


# ------------------------------------------------------------------------------------------- OME-Zarr
def _open_ome_zarr(path: Path) -> Slide:
    import dask.array as da
    import zarr

    root = zarr.open_group(str(path), mode="r")
    attributes = dict(root.attrs)
    multiscales = attributes.get("multiscales") or attributes.get("ome", {}).get("multiscales")
    if not multiscales:
        raise SlideError(f"{path} is a zarr group without OME-Zarr 'multiscales' metadata")
    spec = multiscales[0]
    axes = [a["name"] if isinstance(a, dict) else a for a in spec.get("axes", ["y", "x"])]
    levels = []
    for dataset in spec["datasets"]:
        array = da.from_zarr(root[dataset["path"]])
        for name in [a for a in axes if a in ("t", "z")]:  # a 2-D slide: take the first plane
            array = array[(slice(None),) * axes.index(name) + (0,)]
        kept = [a for a in axes if a not in ("t", "z")]
        if "c" in kept:
            array = da.moveaxis(array, kept.index("c"), -1)
        levels.append(array)
    scale = None
    transforms = spec["datasets"][0].get("coordinateTransformations", [])
    units = {a.get("name"): a.get("unit") for a in spec.get("axes", []) if isinstance(a, dict)}
    for transform in transforms:
        if transform.get("type") == "scale" and units.get("x") in ("micrometer", "µm", "um"):
            scale = float(transform["scale"][axes.index("x")])
    return Slide(path, tuple(levels), scale, "ome-zarr", {"multiscales": multiscales})


# ------------------------------------------------------------------------------------------ OpenSlide
def _open_openslide(path: Path) -> Slide:
    try:
        import openslide
    except ImportError as err:
        raise SlideError(
            f"{path.name}: this vendor format is read through OpenSlide, which is not installed; "
            "install it with: pip install 'napari-cervix[slides]'"
        ) from err
    import dask
    import dask.array as da

    handle = openslide.OpenSlide(str(path))
    levels = []
    for level, (width, height) in enumerate(handle.level_dimensions):
        scale = handle.level_downsamples[level]

        def read(y0, x0, h, w, level=level, scale=scale):
            region = handle.read_region((int(x0 * scale), int(y0 * scale)), level, (w, h))
            return np.asarray(region.convert("RGB"))

        rows = []
        for y0 in range(0, height, TILE):
            row = []
            for x0 in range(0, width, TILE):
                h, w = min(TILE, height - y0), min(TILE, width - x0)
                row.append(da.from_delayed(dask.delayed(read)(y0, x0, h, w), (h, w, 3), np.uint8))
            rows.append(da.concatenate(row, axis=1))
        levels.append(da.concatenate(rows, axis=0))
    mpp = handle.properties.get(openslide.PROPERTY_NAME_MPP_X)
    return Slide(path, tuple(levels), float(mpp) if mpp else None, "openslide")


#: (format name, file name suffixes, opener). The first row whose suffix matches opens the file.
SLIDE_FORMATS: list[tuple[str, tuple[str, ...], Callable[[Path], Slide]]] = [
    ("tiff", (".ome.tif", ".ome.tiff", ".tif", ".tiff", ".svs"), _open_tiff),
    ("ome-zarr", (".zarr", ".ome.zarr"), _open_ome_zarr),
    ("openslide", (".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif"), _open_openslide),
]


def slide_format(path) -> str | None:
    name = str(path).lower().rstrip("/")
    for format_name, suffixes, _ in SLIDE_FORMATS:
        if name.endswith(suffixes):
            return format_name
    return None


def open_slide(path) -> Slide:
    """Open a slide file or OME-Zarr folder lazily (see :data:`SLIDE_FORMATS`)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise SlideError(f"{path} does not exist")
    format_name = slide_format(path)
    if format_name is None:
        known = ", ".join(s for _, suffixes, _ in SLIDE_FORMATS for s in suffixes)
        raise SlideError(f"{path.name}: not a slide format napari-cervix reads ({known})")
    opener = next(o for name, _, o in SLIDE_FORMATS if name == format_name)
    return opener(path)


# --------------------------------------------------------------------------------------------- writing
def _tiles(level, tile: int):
    """Tiles of an array-like in row-major order, read one at a time (tifffile's tiled-write iterator)."""
    height, width = level.shape[:2]
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            block = np.asarray(level[y0 : y0 + tile, x0 : x0 + tile])
            if block.shape[:2] != (tile, tile):  # edge tiles are padded to full size
                pad = [(0, tile - block.shape[0]), (0, tile - block.shape[1])] + [(0, 0)] * (block.ndim - 2)
                block = np.pad(block, pad)
            yield block


def level_shapes(shape, min_side: int = TILE) -> list[tuple[int, ...]]:
    """Shapes of a pyramid halving (rounding down) until the longer side is at most ``min_side``."""
    shapes = [tuple(int(s) for s in shape)]
    while max(shapes[-1][:2]) > min_side:
        height, width = shapes[-1][:2]
        shapes.append((height // 2, width // 2, *shapes[-1][2:]))
    return shapes


def halve_into(source, target, band: int = 2 * TILE) -> None:
    """Write the 2×2 block means of ``source`` into ``target`` (any array-likes, target half the size),
    reading ``band`` rows of the source at a time, so memory is one band whatever the image height."""
    height, width = target.shape[:2]
    for y0 in range(0, height, band // 2):
        rows = np.asarray(source[2 * y0 : 2 * min(y0 + band // 2, height), : 2 * width], np.float32)
        blocks = rows.reshape(rows.shape[0] // 2, 2, width, 2, *rows.shape[2:]).mean(axis=(1, 3))
        target[y0 : y0 + blocks.shape[0]] = np.round(blocks).astype(target.dtype)


def write_ome_tiff(path, image, pixel_size_um: float | None = None, *, tile: int = TILE, compression="zlib") -> Path:
    """Write ``image`` (H×W or H×W×3, any array-like) as a tiled pyramidal OME-TIFF.

    The lower levels are computed band by band into scratch files beside the output, then every level is
    written tile by tile: memory stays one band whatever the slide size. Written under a temporary name and
    renamed, so an interrupted write never leaves a truncated slide under the real name.
    """
    import tempfile

    import tifffile

    from ._atomic import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shapes = level_shapes(image.shape, tile)
    rgb = len(shapes[0]) == 3
    dtype = np.dtype(image.dtype)
    metadata = {"axes": "YXS" if rgb else "YX"}
    resolution = {}
    if pixel_size_um:
        metadata.update(PhysicalSizeX=pixel_size_um, PhysicalSizeY=pixel_size_um)
        metadata.update(PhysicalSizeXUnit="µm", PhysicalSizeYUnit="µm")
        resolution = {"resolution": (1e4 / pixel_size_um, 1e4 / pixel_size_um), "resolutionunit": "CENTIMETER"}
    options = {"tile": (tile, tile), "compression": compression, "photometric": "rgb" if rgb else "minisblack"}
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".pyramid-") as scratch:
        levels = [image]
        for k, shape in enumerate(shapes[1:], start=1):
            levels.append(np.lib.format.open_memmap(Path(scratch) / f"{k}.npy", "w+", dtype, shape))
            halve_into(levels[k - 1], levels[k])
        with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tif:
            for index, level in enumerate(levels):
                level_resolution = dict(resolution)
                if resolution:
                    factor = shapes[0][0] / shapes[index][0]
                    level_resolution["resolution"] = tuple(r / factor for r in resolution["resolution"])
                tif.write(
                    _tiles(level, tile),
                    shape=shapes[index],
                    dtype=dtype,
                    subifds=len(levels) - 1 if index == 0 else None,
                    subfiletype=1 if index else 0,
                    metadata=metadata if index == 0 else None,
                    **level_resolution,
                    **options,
                )
    return path


def describe(slide: Slide) -> str:
    """One line for logs and summaries."""
    size = "×".join(str(s) for s in slide.shape[:2])
    pixel = f"{slide.pixel_size_um:g} µm/px" if slide.pixel_size_um else "pixel size unknown"
    return f"{slide.path.name}: {slide.format}, {size} px, {len(slide.levels)} levels, {pixel}"


__all__ = [
    "SLIDE_FORMATS",
    "Slide",
    "SlideError",
    "describe",
    "open_slide",
    "halve_into",
    "level_shapes",
    "slide_format",
    "write_ome_tiff",
]
