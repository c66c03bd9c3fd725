"""npe2 sample-data providers: a synthetic smear with its ground truth as napari layer-data tuples.

The ground truth comes as the same linked layers a prediction gets
(:func:`napari_cervix.instances.layers.layer_tuples`). Plain numpy only (no napari import), so the
functions are cheap to import and easy to test.
"""

from __future__ import annotations

from .instances.layers import layer_tuples
from .io.sample import CellSample
from .synth import generate_smear

#: Fixed seed so "File > Open Sample" shows the same smear every time.
SAMPLE_SEED = 2014

#: Name prefix of the ground-truth layers ("ground truth cells", "ground truth nuclei", …).
GROUND_TRUTH = "ground truth"


def _layers(sample: CellSample, image_name: str, image_kwargs: dict) -> list[tuple]:
    # The synthetic smear knows each cell's own nucleus: its cell set carries that link as generated.
    return [(sample.image, {"name": image_name, **image_kwargs}, "image")] + layer_tuples(
        sample.cell_set(), GROUND_TRUTH
    )


def make_smear_sample() -> list[tuple]:
    """Gray synthetic smear (ISBI 2014 look) + its ground-truth cells and nuclei."""
    sample = generate_smear(seed=SAMPLE_SEED)
    return _layers(sample, "synthetic smear", {})


def make_rgb_smear_sample() -> list[tuple]:
    """Pap-stained-looking RGB synthetic smear + its ground-truth cells and nuclei."""
    sample = generate_smear(seed=SAMPLE_SEED, rgb=True)
    return _layers(sample, "synthetic smear (RGB)", {"rgb": True})


#: Side of the synthetic sample slide: large enough for a pyramid and several analysis tiles, small enough
#: to generate in seconds.
SAMPLE_SLIDE_SIDE = 2048


def make_slide_sample() -> list[tuple]:
    """A generated RGB field written once as a pyramidal OME-TIFF in the cache folder, opened as the slide
    reader opens a slide (a multiscale layer whose ``metadata["slide_path"]`` the Analyze slide widget runs on)."""
    from ._slide_reader import slide_layer
    from .io.slides import open_slide, write_ome_tiff
    from .registry import cache_dir
    from .synth import PIXEL_SIZE_UM, generate_smear_field

    name = f"synthetic_slide_{SAMPLE_SLIDE_SIDE}_{SAMPLE_SEED}_{PIXEL_SIZE_UM}um.ome.tif"
    path = cache_dir() / "samples" / name
    if not path.exists():  # written atomically: an interrupted write leaves no file under this name
        field = generate_smear_field((SAMPLE_SLIDE_SIDE, SAMPLE_SLIDE_SIDE), seed=SAMPLE_SEED, rgb=True)
        write_ome_tiff(path, field.image, pixel_size_um=PIXEL_SIZE_UM)
    return [slide_layer(open_slide(path))]
