"""Dock widget "Segment nucleus and cytoplasm": a thin layer over
:func:`napari_cervix.semantic.inference.segment_semantic_steps`."""

from __future__ import annotations

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, SpinBox
from napari.layers import Image
from napari.utils.colormaps import DirectLabelColormap

from ..io.sample import SEMANTIC_CLASSES
from ..scale import describe_scale
from ._common import geometry, layer_picker, model_picker, pixel_size_box, pixel_size_of
from ._worker import TaskWidget

#: Fixed colors so every result reads the same: transparent background, cytoplasm, nucleus.
CLASS_COLORS = {0: (0, 0, 0, 0), 1: (0.35, 0.75, 1.0, 1.0), 2: (0.85, 0.1, 0.45, 1.0), None: (0, 0, 0, 0)}


class SemanticWidget(TaskWidget):
    def __init__(self, viewer: napari.viewer.Viewer):  # the annotation lets napari pass its viewer in
        super().__init__(viewer, "Segment")
        self.image = layer_picker(viewer, Image, "image")
        self.model, self.model_file = model_picker("semantic")
        self.tile_size = SpinBox(label="tile size", value=512, min=64, max=4096, step=32)
        self.overlap = SpinBox(label="overlap", value=64, min=0, max=1024, step=16)
        self.tta = CheckBox(text="flip TTA", value=False)
        self.crf = CheckBox(text="CRF refinement", value=False)
        self.probabilities = CheckBox(text="add probability layers", value=False)
        self.pixel_size = pixel_size_box()
        self.extend(
            [
                self.image,
                self.model,
                self.model_file,
                self.tile_size,
                self.overlap,
                self.tta,
                self.crf,
                self.probabilities,
                self.pixel_size,
                self.run_button,
                self.cancel_button,
                self.status,
            ]
        )

    def run(self, *_):
        from ..semantic.inference import segment_semantic_steps

        chosen = self.chosen_image_and_model("Segment")
        if chosen is None:
            return
        layer, data, model = chosen
        options = dict(
            tile_size=self.tile_size.value,
            overlap=min(self.overlap.value, self.tile_size.value - 1),
            tta=self.tta.value,
            crf=self.crf.value,
            return_probabilities=self.probabilities.value,
            pixel_size_um=pixel_size_of(layer, self.pixel_size),
            return_scale=True,
        )
        name, place = layer.name, geometry(layer)
        self.start(
            lambda: segment_semantic_steps(data, model, **options),
            lambda result: self._add_layers(result, name, place),
            description=f"Segmenting {name}",
            status=f"segmenting {name}…",
        )

    def _add_layers(self, result, name: str, place: dict):
        *result, scale = result
        labels, probs = result if len(result) == 2 else (result[0], None)
        features = pd.DataFrame({"label": np.arange(len(SEMANTIC_CLASSES)), "class": list(SEMANTIC_CLASSES)})
        self._viewer.add_labels(
            labels,
            name=f"{name} semantic",
            features=features,
            colormap=DirectLabelColormap(color_dict=CLASS_COLORS),
            opacity=0.6,
            metadata={"scale": scale.as_dict()},  # the pixel size it was run at (napari_cervix.scale)
            **place,
        )
        if probs is not None:
            for index, cls in enumerate(SEMANTIC_CLASSES[1:], start=1):
                self._viewer.add_image(
                    probs[index],
                    name=f"{name} P({cls})",
                    colormap="magma",
                    blending="additive",
                    contrast_limits=(0, 1),
                    visible=False,
                    **place,
                )
        counts = np.bincount(labels.ravel(), minlength=len(SEMANTIC_CLASSES))
        share = counts / max(counts.sum(), 1)
        shares = "  ".join(f"{c}: {s:.1%}" for c, s in zip(SEMANTIC_CLASSES, share))
        self.status.value = f"{shares}; {describe_scale(scale)}"
