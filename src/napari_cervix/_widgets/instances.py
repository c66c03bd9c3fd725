"""Dock widget "Segment overlapping cells": a thin layer over
:func:`napari_cervix.instances.segment_instances_steps`.

Runs in a ``thread_worker`` (progress per tile, cancel between tiles) and adds, on return, three layers
linked by cell id (see :mod:`napari_cervix.instances.layers`): a Shapes layer of cell outlines with
overlaps intact (features: cell_id, score, area, class, n_nuclei; the sparse cell set in its metadata), a
Labels layer of nuclei painted with their cell's id, and a cell Labels layer where each overlapped pixel
belongs to the smallest cell covering it — the same layers the reader and the sample data give. The model
runs on the default backend (torch + torchvision, the plugin's own dependencies; no mmdet/mmcv needed).
"""

from __future__ import annotations

import napari
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox
from napari.layers import Image

from ..instances.completion import COMPLETE_NUCLEI
from ..scale import Scale, describe_scale
from ._common import geometry, layer_picker, model_picker, pixel_size_box, pixel_size_of
from ._worker import TaskWidget


class InstanceWidget(TaskWidget):
    def __init__(self, viewer: napari.viewer.Viewer):  # the annotation lets napari pass its viewer in
        super().__init__(viewer, "Segment cells")
        self.image = layer_picker(viewer, Image, "image")
        self.model, self.model_file = model_picker("instances")
        self.score_threshold = FloatSpinBox(label="score threshold", value=0.5, min=0.0, max=1.0, step=0.05)
        self.max_detections = SpinBox(label="max detections / tile", value=100, min=1, max=1000)
        self.tile_size = SpinBox(label="tile size", value=512, min=64, max=4096, step=32)
        self.overlap = SpinBox(label="overlap", value=128, min=0, max=1024, step=16)
        self.pixel_size = pixel_size_box()
        self.complete_nuclei = ComboBox(
            label="add missed nuclei",
            choices=tuple(COMPLETE_NUCLEI),
            value="auto",
            tooltip="add the nuclei the detector missed from the semantic model, each with a cell: "
            "'auto' for color images (real Pap fields), where the detector misses many abnormal nuclei",
        )
        self.refine_nuclei = CheckBox(
            text="refine nuclei",
            value=True,
            tooltip="redraw each detected nucleus's boundary on the semantic model's nucleus probability",
        )
        self.refine_cells = CheckBox(
            text="refine cells",
            value=True,
            tooltip="redraw each detected cell's edge against the background on the semantic model's foreground",
        )
        self.extend(
            [
                self.image,
                self.model,
                self.model_file,
                self.score_threshold,
                self.max_detections,
                self.tile_size,
                self.overlap,
                self.pixel_size,
                self.complete_nuclei,
                self.refine_nuclei,
                self.refine_cells,
                self.run_button,
                self.cancel_button,
                self.status,
            ]
        )

    def run(self, *_):
        from ..instances import segment_instances_steps

        chosen = self.chosen_image_and_model("Segment cells")
        if chosen is None:
            return
        layer, data, model = chosen
        options = dict(
            score_threshold=self.score_threshold.value,
            max_detections=self.max_detections.value,
            tile_size=self.tile_size.value,
            overlap=min(self.overlap.value, self.tile_size.value - 1),
            pixel_size_um=pixel_size_of(layer, self.pixel_size),
            complete_nuclei=COMPLETE_NUCLEI[self.complete_nuclei.value],
            refine_nuclei=self.refine_nuclei.value,
            refine_cells=self.refine_cells.value,
        )
        name, place = layer.name, geometry(layer)
        self.start(
            lambda: segment_instances_steps(data, model, **options),
            lambda result: self._add_layers(result, name, place),
            description=f"Segmenting cells of {name}",
            status=f"segmenting {name}…",
        )

    def _add_layers(self, result, name: str, place: dict):
        from ..instances.layers import layer_tuples

        added = []
        for data, kwargs, layer_type in layer_tuples(result, name, place):
            added.append(getattr(self._viewer, f"add_{layer_type}")(data, **kwargs))
        self.last_layers = added  # for scripting and tests
        scale = describe_scale(Scale(**result.meta["scale"]))
        completed = result.meta.get("completed") or {}
        added = f" ({completed['nuclei']} added by the semantic model)" if completed.get("nuclei") else ""
        self.status.value = f"{len(result)} cells, {len(result.nuclei)} nuclei{added}; {scale}"
