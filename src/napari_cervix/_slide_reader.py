"""napari reader for whole slides: a pyramidal TIFF / OME-TIFF / SVS, an OME-Zarr folder or a vendor file
becomes one **multiscale** image layer, so napari reads only the tiles on screen (never the full resolution).

A plain single-level TIFF is left to napari's own reader (``None``), unless it is too large to load whole,
in which case it is still opened lazily. The layer's scale is the slide's pixel size in µm when the file
says it, and ``metadata`` keeps the slide's path and pixel size for the slide pipeline.
"""

from __future__ import annotations

from .io.slides import SlideError, open_slide, slide_format

LAZY_SIDE = 16384  # single-level images at least this large are opened lazily too


def get_slide_reader(path):
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if slide_format(path) is None:
        return None
    try:
        slide = open_slide(path)
    except SlideError:
        return None
    if len(slide.levels) < 2 and max(slide.shape[:2]) < LAZY_SIDE:
        return None
    return lambda _path: [slide_layer(slide)]


def slide_layer(slide) -> tuple:
    """(data, kwargs, "image") for a :class:`~napari_cervix.io.slides.Slide`."""
    kwargs = {
        "name": slide.path.name,
        "multiscale": len(slide.levels) > 1,
        "rgb": slide.rgb,
        "metadata": {"slide_path": str(slide.path), "pixel_size_um": slide.pixel_size_um, "format": slide.format},
    }
    if slide.pixel_size_um:
        kwargs["scale"] = (slide.pixel_size_um, slide.pixel_size_um)
    data = list(slide.levels) if len(slide.levels) > 1 else slide.levels[0]
    return data, kwargs, "image"
