"""The one tiling engine: overlapping tiles over any H×W array-like, blended back in row bands.

Every task (semantic, instances, features on whole slides) walks images through :func:`tile_grid`;
dense predictions go through :func:`blend_tiles`, a generator that yields a :class:`TileProgress` per
tile (for napari progress bars and cancel) and returns the blended result.

Memory stays flat in the image height: the input is read tile by tile (``image[y0:y1, x0:x1]`` works on
numpy, dask and zarr), and the blend accumulator holds one band of tile rows; finished rows are written
to ``out`` (any array supporting slice assignment, e.g. a zarr array on disk for a whole slide).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from .geometry import pad_to_multiple

#: Reflected pixels added to a tile's sides on the image's edge (see :func:`blend_tiles`).
EDGE_MARGIN = 16


@dataclass(frozen=True)
class Tile:
    """Region ``[y0:y1, x0:x1]`` of the image; ``row``/``col`` index the grid."""

    y0: int
    y1: int
    x0: int
    x1: int
    row: int
    col: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


@dataclass(frozen=True)
class TileProgress:
    done: int
    total: int


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)  # last tile flush with the border, never hanging over it
    return sorted(set(starts))


def tile_grid(shape: tuple[int, ...], tile_size: int = 512, overlap: int = 64) -> list[Tile]:
    """Overlapping tiles covering an H×W image, row by row. Tiles never extend past the image."""
    height, width = int(shape[0]), int(shape[1])
    if tile_size < 1:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must be in [0, tile_size), got {overlap} for tile_size {tile_size}")
    if height < 1 or width < 1:
        raise ValueError(f"cannot tile an empty image of shape {shape[:2]}")
    ys = _starts(height, tile_size, overlap)
    xs = _starts(width, tile_size, overlap)
    return [
        Tile(y0, min(y0 + tile_size, height), x0, min(x0 + tile_size, width), r, c)
        for r, y0 in enumerate(ys)
        for c, x0 in enumerate(xs)
    ]


def blend_window(height: int, width: int, overlap: int) -> np.ndarray:
    """Separable linear ramp over ``overlap`` pixels at each edge; never zero, so borders keep weight."""

    def ramp(n: int) -> np.ndarray:
        if overlap <= 0:
            return np.ones(n, np.float32)
        i = np.arange(n, dtype=np.float32)
        r = np.minimum((i + 1) / (overlap + 1), (n - i) / (overlap + 1))
        return np.clip(r, 1e-3, 1.0)

    return np.outer(ramp(height), ramp(width)).astype(np.float32)


def _mirror_edges(data: np.ndarray, tile: Tile, height: int, width: int, margin: int):
    """``data`` (the pixels of ``tile``) with ``margin`` mirrored pixels added on each side that lies on the
    image's edge; returns it and the offset (top, left) of the tile's own pixels in it."""
    # Reflected about the edge pixel, not repeating it: a one-pixel dark frame (ISBI's synthetic images have
    # one) stays one pixel wide instead of doubling into a band that reads as cytoplasm. The
    # margin stays below the tile's own size, so there are pixels to reflect (tiles are rarely that small).
    margin = min(margin, data.shape[0] - 1, data.shape[1] - 1)
    top = margin if tile.y0 == 0 else 0
    left = margin if tile.x0 == 0 else 0
    bottom = margin if tile.y1 == height else 0
    right = margin if tile.x1 == width else 0
    if margin <= 0 or not (top or left or bottom or right):
        return data, 0, 0
    pad = [(top, bottom), (left, right)] + [(0, 0)] * (data.ndim - 2)
    return np.pad(data, pad, mode="reflect"), top, left


def blend_tiles(
    image,
    predict: Callable[[np.ndarray], np.ndarray],
    *,
    channels: int,
    tile_size: int = 512,
    overlap: int = 64,
    divisor: int = 32,
    edge_margin: int = EDGE_MARGIN,
    finalize: Callable[[np.ndarray], np.ndarray] | None = None,
    out=None,
    out_dtype=np.float32,
) -> Generator[TileProgress, None, np.ndarray]:
    """Run ``predict`` on overlapping tiles of ``image`` and blend the results.

    ``predict`` takes a tile (h×w or h×w×c, padded to a multiple of ``divisor``) and returns a
    ``channels``×h×w float array. A tile side on the image's edge is first extended by ``edge_margin``
    mirrored pixels: a network's zero padding then falls outside the image, so it does not paint a rim of
    foreground along the image's edge (a side inside the image has its neighbours' overlap as context).
    ``finalize`` maps a finished band ``channels``×rows×W to the output's rows (``...×rows×W``, e.g.
    ``argmax`` → rows×W labels); without it the output is channels×H×W.
    Yields one :class:`TileProgress` per tile; the generator's return value is ``out``.
    """
    height, width = int(image.shape[0]), int(image.shape[1])
    tiles = tile_grid(image.shape, tile_size, overlap)
    row_starts = sorted({t.y0 for t in tiles})
    finalize = finalize or (lambda block: block)
    acc = np.zeros((channels, 0, width), np.float32)
    weight = np.zeros((0, width), np.float32)
    band_y0 = 0
    done = 0
    for row_index, row_y0 in enumerate(row_starts):
        row_tiles = [t for t in tiles if t.y0 == row_y0]
        row_y1 = row_tiles[0].y1
        grow = row_y1 - band_y0 - acc.shape[1]
        if grow > 0:
            acc = np.concatenate([acc, np.zeros((channels, grow, width), np.float32)], axis=1)
            weight = np.concatenate([weight, np.zeros((grow, width), np.float32)], axis=0)
        for tile in row_tiles:
            h, w = tile.y1 - tile.y0, tile.x1 - tile.x0
            data, top, left = _mirror_edges(np.asarray(image[tile.slices]), tile, height, width, edge_margin)
            data, _ = pad_to_multiple(data, divisor)
            pred = np.asarray(predict(data), np.float32)[:, top : top + h, left : left + w]
            if pred.shape != (channels, h, w):
                raise ValueError(f"predict returned shape {pred.shape}, expected {(channels, h, w)}")
            win = blend_window(h, w, overlap)
            ys = slice(tile.y0 - band_y0, tile.y1 - band_y0)
            acc[:, ys, tile.x0 : tile.x1] += pred * win
            weight[ys, tile.x0 : tile.x1] += win
            done += 1
            yield TileProgress(done, len(tiles))
        # Rows above the next tile row receive no more contributions: finish and flush them.
        next_y0 = row_starts[row_index + 1] if row_index + 1 < len(row_starts) else height
        n = next_y0 - band_y0
        block = finalize(acc[:, :n] / weight[:n])
        if out is None:
            out = np.zeros(block.shape[:-2] + (height, width), dtype=out_dtype)
        out[..., band_y0:next_y0, :] = block
        acc, weight, band_y0 = acc[:, n:], weight[n:], next_y0
    return out


def run_to_end(generator: Generator, callback: Callable[[TileProgress], None] | None = None):
    """Drive a progress generator to its end (console/CLI use) and return its value."""
    try:
        while True:
            progress = next(generator)
            if callback is not None:
                callback(progress)
    except StopIteration as stop:
        return stop.value
