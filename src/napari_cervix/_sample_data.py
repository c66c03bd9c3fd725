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
