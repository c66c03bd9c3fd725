import dask.array as da
import numpy as np
import pytest
import zarr

from napari_cervix.tiling import TileProgress, blend_tiles, blend_window, pad_to_multiple, run_to_end, tile_grid


@pytest.mark.parametrize("shape", [(100, 100), (512, 512), (513, 700), (1500, 333), (1, 5)])
def test_grid_covers_image_and_stays_inside(shape):
    tiles = tile_grid(shape, tile_size=256, overlap=32)
    covered = np.zeros(shape, int)
    for t in tiles:
        assert 0 <= t.y0 < t.y1 <= shape[0] and 0 <= t.x0 < t.x1 <= shape[1]
        covered[t.slices] += 1
    assert covered.min() >= 1
    if shape[0] > 256:  # neighbouring tiles overlap by at least the requested overlap
        ys = sorted({t.y0 for t in tiles})
        assert all(b - a <= 256 - 32 for a, b in zip(ys, ys[1:]))


def test_grid_rejects_bad_settings():
    with pytest.raises(ValueError, match="overlap"):
        tile_grid((100, 100), tile_size=64, overlap=64)
    with pytest.raises(ValueError, match="empty"):
        tile_grid((0, 10), tile_size=64, overlap=8)


def test_window_is_positive_and_ramps():
    w = blend_window(64, 64, 16)
    assert w.min() > 0 and w.max() == pytest.approx(1.0)
    assert w[0, 32] < w[16, 32] <= w[32, 32]


def test_pad_to_multiple_mirrors_and_reports_size():
    tile = np.arange(30 * 50).reshape(30, 50)
    padded, size = pad_to_multiple(tile, 32)
    assert padded.shape == (32, 64) and size == (30, 50)
    np.testing.assert_array_equal(padded[:30, :50], tile)


def _identity_channels(tile):
    gray = tile.astype(np.float32)
    return np.stack([gray, 2 * gray])


@pytest.mark.parametrize("shape,tile,overlap", [((300, 410), 128, 32), ((64, 64), 256, 16), ((257, 129), 64, 0)])
def test_blend_reproduces_a_pointwise_function_exactly(shape, tile, overlap):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    gen = blend_tiles(image, _identity_channels, channels=2, tile_size=tile, overlap=overlap)
    steps = []
    out = run_to_end(gen, steps.append)
    np.testing.assert_allclose(out[0], image, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], 2 * image, rtol=1e-5, atol=1e-6)
    assert steps[-1] == TileProgress(len(tile_grid(shape, tile, overlap)), len(tile_grid(shape, tile, overlap)))
    assert [s.done for s in steps] == list(range(1, len(steps) + 1))


def test_blend_finalize_and_external_output_on_dask_and_zarr(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.random((400, 300)).astype(np.float32)
    lazy = da.from_array(image, chunks=(100, 100))
    store = zarr.open(str(tmp_path / "labels.zarr"), mode="w", shape=(400, 300), dtype="uint8", chunks=(100, 100))
    out = run_to_end(
        blend_tiles(
            lazy,
            _identity_channels,
            channels=2,
            tile_size=128,
            overlap=32,
            finalize=lambda block: (block[0] > 0.5).astype(np.uint8),
            out=store,
        )
    )
    assert out is store
    np.testing.assert_array_equal(store[:], (image > 0.5).astype(np.uint8))


def test_blend_checks_predict_shape():
    with pytest.raises(ValueError, match="expected"):
        run_to_end(blend_tiles(np.zeros((64, 64)), lambda t: np.zeros((1, 8, 8)), channels=1, tile_size=64, overlap=8))


def test_blend_memory_is_one_band(monkeypatch):
    """The accumulator never holds more than one band of tile rows, whatever the image height."""
    seen = []
    real_concatenate = np.concatenate

    def spy(arrays, axis=0, **kw):
        result = real_concatenate(arrays, axis=axis, **kw)
        seen.append(result.shape)
        return result

    monkeypatch.setattr(np, "concatenate", spy)
    image = np.zeros((2000, 64), np.float32)
    run_to_end(blend_tiles(image, lambda t: t[None].astype(np.float32), channels=1, tile_size=128, overlap=32))
    assert max(s[-2] for s in seen if len(s) == 2) <= 128


def _rim_of_the_input(tile):
    """A network's zero-padding artefact in miniature: 'foreground' on the two outer pixels of its input."""
    assert tile.shape[0] % 32 == 0 and tile.shape[1] % 32 == 0  # still padded to the divisor
    rim = np.ones(tile.shape[:2], np.float32)
    rim[2:-2, 2:-2] = 0
    return rim[None]


@pytest.mark.parametrize("shape", [(300, 410), (40, 70), (3, 90)])
def test_blend_puts_the_network_border_outside_the_image(shape):
    image = np.random.default_rng(2).random(shape + (3,)).astype(np.float32)
    mirrored = run_to_end(blend_tiles(image, _rim_of_the_input, channels=1, tile_size=128, overlap=32))[0]
    # The image's edge sits on mirrored context, not on the network's border: it reads like a line 20 px
    # inside (which the seams between tiles cross alike); a one-tile image has no seams at all.
    if max(shape) <= 128:
        assert mirrored.max() == 0
    else:
        np.testing.assert_allclose(mirrored[0], mirrored[20], atol=1e-6)
        np.testing.assert_allclose(mirrored[-1], mirrored[-21], atol=1e-6)
        np.testing.assert_allclose(mirrored[:, 0], mirrored[:, 20], atol=1e-6)
        np.testing.assert_allclose(mirrored[:, -1], mirrored[:, -21], atol=1e-6)
    bare = run_to_end(blend_tiles(image, _rim_of_the_input, channels=1, tile_size=128, overlap=32, edge_margin=0))
    assert bare[0, 0, :].min() == 1 and bare[0, :, 0].min() == 1  # without it the rim lands on the image
    # A pointwise function is still reproduced exactly with the margin.
    again = run_to_end(blend_tiles(image, lambda t: t.transpose(2, 0, 1), channels=3, tile_size=128, overlap=32))
    np.testing.assert_allclose(again, image.transpose(2, 0, 1), rtol=1e-5, atol=1e-6)
