"""Whole slides: lazy multiscale readers (OME-TIFF, SVS-style TIFF, OME-Zarr), pixel size, tissue detection."""

import json
import resource

import numpy as np
import pytest
import tifffile

from napari_cervix.io.slides import SlideError, halve_into, level_shapes, open_slide, slide_format, write_ome_tiff
from napari_cervix.slide_analysis import tile_cores
from napari_cervix.synth import generate_smear
from napari_cervix.tiling import tile_grid
from napari_cervix.tissue import TissueMask, detect_tissue, optical_density, tissue_mask_of

GLASS = (236, 232, 228)


def mosaic(shape, fields: list[tuple[int, int]], seed: int = 0) -> np.ndarray:
    """Glass with generated RGB smear fields of 512² pasted at the given corners."""
    slide = np.empty((*shape, 3), np.uint8)
    slide[:] = GLASS
    for k, (y, x) in enumerate(fields):
        slide[y : y + 512, x : x + 512] = generate_smear((512, 512), n_cells=6, seed=seed + k, rgb=True).image
    return slide


@pytest.fixture(scope="module")
def image():
    return mosaic((2048, 3072), [(200, 300), (1300, 2200)])


@pytest.fixture(scope="module")
def ome_tiff(tmp_path_factory, image):
    return write_ome_tiff(tmp_path_factory.mktemp("slide") / "smear.ome.tif", image, pixel_size_um=0.5)


def test_ome_tiff_opens_as_a_lazy_pyramid_with_its_pixel_size(ome_tiff, image):
    slide = open_slide(ome_tiff)
    assert slide.format == "ome-tiff" and slide.rgb
    assert slide.shape == image.shape
    assert [level.shape[:2] for level in slide.levels] == [(2048, 3072), (1024, 1536), (512, 768), (256, 384)]
    assert slide.pixel_size_um == pytest.approx(0.5)
    assert slide.downsamples == pytest.approx((1.0, 2.0, 4.0, 8.0))
    assert all(hasattr(level, "dask") for level in slide.levels)  # nothing read until sliced
    np.testing.assert_array_equal(np.asarray(slide.levels[0][100:700, 250:900]), image[100:700, 250:900])
    halved = image[:2, :2].reshape(-1, 3).mean(0).round()
    np.testing.assert_array_equal(np.asarray(slide.levels[1][0, 0]), halved)


def test_pyramid_halves_until_one_tile():
    assert level_shapes((1500, 700)) == [(1500, 700), (750, 350), (375, 175)]
    source = np.arange(6 * 8, dtype=np.uint16).reshape(6, 8)
    target = np.zeros((3, 4), np.uint16)
    halve_into(source, target, band=2)  # one output row per band: the bands must tile exactly
    expected = source.reshape(3, 2, 4, 2).mean(axis=(1, 3)).round()
    np.testing.assert_array_equal(target, expected)


def test_gray_tiff_pixel_size_from_resolution_tags_and_svs_description(tmp_path):
    gray = np.random.default_rng(0).integers(0, 255, (600, 800), dtype=np.uint8)
    tagged = tmp_path / "gray.tif"
    tifffile.imwrite(tagged, gray, tile=(256, 256), resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit="CENTIMETER")
    slide = open_slide(tagged)
    assert slide.format == "tiff" and not slide.rgb and len(slide.levels) == 1
    assert slide.pixel_size_um == pytest.approx(0.25)
    np.testing.assert_array_equal(np.asarray(slide.levels[0]), gray)

    svs = tmp_path / "aperio.svs"
    tifffile.imwrite(svs, gray, tile=(256, 256), description="Aperio Image Library v12 |AppMag = 40|MPP = 0.2520")
    assert open_slide(svs).pixel_size_um == pytest.approx(0.252)

    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, gray)
    assert open_slide(bare).pixel_size_um is None


def test_ome_zarr_multiscales(tmp_path, image):
    import zarr

    root = zarr.open_group(str(tmp_path / "smear.ome.zarr"), mode="w")
    datasets = []
    level = image
    for k, shape in enumerate(level_shapes(image.shape)):
        if k:
            halved = np.zeros(shape, image.dtype)
            halve_into(level, halved)
            level = halved
        array = np.moveaxis(level, -1, 0)  # NGFF: channel axis first
        root.create_array(str(k), data=array, chunks=(3, 256, 256))
        datasets.append(
            {"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [1, 0.4 * 2**k, 0.4 * 2**k]}]}
        )
    axes = [{"name": "c", "type": "channel"}] + [{"name": a, "type": "space", "unit": "micrometer"} for a in "yx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    slide = open_slide(tmp_path / "smear.ome.zarr")
    assert slide.format == "ome-zarr" and slide.rgb and len(slide.levels) == 4
    assert slide.pixel_size_um == pytest.approx(0.4)
    np.testing.assert_array_equal(np.asarray(slide.levels[0][:300, :300]), image[:300, :300])
    json.dumps(slide.metadata)  # the metadata stays plain JSON for summaries


def test_bad_slides_get_clear_messages(tmp_path):
    with pytest.raises(SlideError, match="does not exist"):
        open_slide(tmp_path / "missing.ome.tif")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SlideError, match="not a slide format"):
        open_slide(tmp_path / "notes.txt")
    (tmp_path / "broken.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(SlideError, match="not a readable TIFF"):
        open_slide(tmp_path / "broken.tif")
    (tmp_path / "vendor.ndpi").write_bytes(b"\0")
    try:
        import openslide  # noqa: F401
    except ImportError:
        with pytest.raises(SlideError, match=r"pip install 'napari-cervix\[slides\]'"):
            open_slide(tmp_path / "vendor.ndpi")
    assert slide_format("x/Slide.OME.TIFF") == "tiff" and slide_format("a.png") is None


def test_interrupted_write_leaves_no_slide(tmp_path):
    class Exploding:
        shape, dtype, ndim = (1024, 1024), np.dtype(np.uint8), 2

        def __getitem__(self, key):
            raise RuntimeError("disk unplugged")

    target = tmp_path / "out.ome.tif"
    with pytest.raises(RuntimeError, match="disk unplugged"):
        write_ome_tiff(target, Exploding())
    assert list(tmp_path.iterdir()) == []


def test_tissue_detection_finds_the_fields_and_skips_glass(ome_tiff):
    slide = open_slide(ome_tiff)
    tissue = detect_tissue(slide, max_side=1024)
    assert tissue.level == 2 and tissue.downsample == pytest.approx(4.0)
    assert tissue.covers(300, 400, 600, 700) and tissue.covers(1400, 2300, 1700, 2600)
    assert not tissue.covers(1500, 100, 1900, 500)  # bare glass far from both fields
    area_of_fields = 2 * 512 * 512 / (2048 * 3072)
    assert area_of_fields * 0.5 < tissue.fraction < area_of_fields * 2.5


def test_tissue_tiles_are_the_fields_whatever_their_white_balance():
    """Fields captured each with its own white balance (like the CRIC fields the slide benchmark mosaics):
    one brighter, one darker than the glass they lie on. Every tile that owns a cell (its core holds the
    cell's centroid) is kept, and every tile of bare glass is skipped."""
    corners = [(200, 300), (1300, 2200)]
    image, centroids = mosaic((2048, 3072), []), []
    for k, ((y, x), gain) in enumerate(zip(corners, (1.04, 0.94))):
        field = generate_smear((512, 512), n_cells=6, seed=k, rgb=True)
        image[y : y + 512, x : x + 512] = np.clip(field.image * gain, 0, 255).astype(np.uint8)
        centroids += [
            (y + r.mean() + box[0], x + c.mean() + box[1])
            for _, box, mask in field.cells
            for r, c in [np.nonzero(mask)]
        ]
    tissue = TissueMask(tissue_mask_of(image[::4, ::4]), downsample=4.0, level=2)
    grid = tile_grid(image.shape, tile_size=1024, overlap=256)
    kept = [tissue.covers(t.y0, t.x0, t.y1, t.x1) for t in grid]
    owners = {
        i
        for i, (y0, y1, x0, x1) in enumerate(tile_cores(grid, image.shape))
        for y, x in centroids
        if y0 <= y < y1 and x0 <= x < x1
    }
    glass = [not any(t.y0 < y + 512 and y < t.y1 and t.x0 < x + 512 and x < t.x1 for y, x in corners) for t in grid]
    assert len(centroids) == 12 and all(kept[i] for i in owners)
    assert any(glass) and not any(k for k, g in zip(kept, glass) if g)


def test_empty_glass_has_no_tissue():
    glass = np.empty((512, 512, 3), np.uint8)
    glass[:] = GLASS
    glass = glass + np.random.default_rng(0).integers(0, 3, glass.shape, dtype=np.uint8)
    assert optical_density(glass).max() < 0.04


class Glass:
    """A lazily generated blank slide: any array-like with shape, dtype and slicing will do."""

    def __init__(self, side: int):
        self.shape, self.dtype, self.ndim = (side, side, 3), np.dtype(np.uint8), 3

    def __getitem__(self, key):
        rows, cols = (range(self.shape[i])[k] for i, k in enumerate(key[:2]))
        out = np.empty((len(rows), len(cols), 3), np.uint8)
        out[:] = GLASS
        return out


def write_glass_pyramid(path, side: int, pixel_size_um: float, tile: int = 1024):
    """A side² pyramidal OME-TIFF of bare glass, written straight from one constant tile per level: a
    32k² slide in seconds (write_ome_tiff would average its 3 GB of pixels into the lower levels)."""
    import tifffile

    from napari_cervix.io.slides import level_shapes

    shapes = level_shapes((side, side, 3), tile)
    block = np.empty((tile, tile, 3), np.uint8)
    block[:] = GLASS
    metadata = {"axes": "YXS", "PhysicalSizeX": pixel_size_um, "PhysicalSizeY": pixel_size_um}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        for index, shape in enumerate(shapes):
            count = -(-shape[0] // tile) * -(-shape[1] // tile)
            tif.write(
                (block for _ in range(count)),
                shape=shape,
                dtype=np.uint8,
                tile=(tile, tile),
                compression="zlib",
                photometric="rgb",
                subifds=len(shapes) - 1 if index == 0 else None,
                subfiletype=1 if index else 0,
                metadata=metadata if index == 0 else None,
            )
    return path


@pytest.mark.gui
def test_napari_opens_a_32k_pyramid_as_a_multiscale_layer_without_reading_it(tmp_path, make_napari_viewer):
    side = 32768
    full_resolution_mb = side * side * 3 / 2**20  # 3 GB
    path = write_glass_pyramid(tmp_path / "big.ome.tif", side, pixel_size_um=0.25)
    viewer = make_napari_viewer()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    layers = viewer.open(str(path), plugin="napari-cervix")
    assert len(layers) == 1 and layers[0].multiscale
    assert layers[0].data[0].shape == (side, side, 3) and len(layers[0].data) >= 5
    assert tuple(layers[0].scale) == pytest.approx((0.25, 0.25))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < full_resolution_mb / 20, f"opening the slide grew the process by {grown_mb:.0f} MB"


def test_openslide_reads_a_tiled_tiff_like_tifffile(tmp_path):
    pytest.importorskip("openslide", reason="the optional 'slides' extra is not installed")
    from napari_cervix.io.slides import _open_openslide

    image = np.zeros((1500, 1300, 3), np.uint8)
    image[:] = (200, 100, 50)
    image[300:900, 200:700] = (10, 200, 30)
    tifffile.imwrite(tmp_path / "generic.tif", image, tile=(256, 256), photometric="rgb", compression="zlib")
    slide = _open_openslide(tmp_path / "generic.tif")  # OpenSlide's generic-TIFF driver, as for a vendor file
    assert slide.format == "openslide" and slide.shape == image.shape
    np.testing.assert_array_equal(slide.read(0, (slice(100, 1000), slice(150, 800))), image[100:1000, 150:800])
