"""Dock widget "Analyze field": a thin layer over :func:`napari_cervix.field.analyze_field_steps`.

One click from a field to graded cells. Runs in a ``thread_worker`` (a progress step per stage, cancel
between stages) and adds, on return, the cell layers every capability gives (see
:mod:`napari_cervix.instances.layers`), with the cell outlines colored by Bethesda severity and the
per-cell table (measurements, ``bethesda_class``, ``p_<class>``, ``p_abnormal``, ``reviewable``,
``squamous_score``) as the cell Labels layer's ``features`` (row i = label i); the status line gives the
counts per class and the field's triage.
"""

from __future__ import annotations

import napari
from magicgui.widgets import CheckBox, ComboBox
from napari.layers import Image

from ..scale import Scale, describe_scale
from ._common import geometry, layer_picker, model_picker, pixel_size_box, pixel_size_of
from ._worker import TaskWidget


class FieldWidget(TaskWidget):
    def __init__(self, viewer: napari.viewer.Viewer):  # the annotation lets napari pass its viewer in
        super().__init__(viewer, "Analyze field")
        from ..field import CELL_SOURCES

        self.image = layer_picker(viewer, Image, "image")
        self.model, self.model_file = model_picker("grading")
        self.model.label = "grading model"
        self.cells = ComboBox(label="cells from", choices=list(CELL_SOURCES), value=CELL_SOURCES[0])
        self.herlev = CheckBox(label="add Herlev 7-class opinion", value=False)
        self.pixel_size = pixel_size_box()
        self.extend(
            [
                self.image,
                self.model,
                self.model_file,
                self.cells,
                self.herlev,
                self.pixel_size,
                self.run_button,
                self.cancel_button,
                self.status,
            ]
        )

    def run(self, *_):
        from ..field import analyze_field_steps

        chosen = self.chosen_image_and_model("Analyze field")
        if chosen is None:
            return
        layer, data, grading_model = chosen
        options = dict(
            cells=self.cells.value, grading_model=grading_model, pixel_size_um=pixel_size_of(layer, self.pixel_size)
        )
        if self.herlev.value:
            options["herlev_model"] = "default"
        name, place = layer.name, geometry(layer)
        self.start(
            lambda: analyze_field_steps(data, **options),
            lambda result: self._add_layers(result, name, place),
            description=f"Analyzing {name}",
            status=f"analyzing {name}…",
        )

    def _add_layers(self, result, name: str, place: dict):
        from ..field import UNGRADED_COLOR, grade_colors
        from ..instances.layers import layer_tuples
        from ..tables import features_for_layer

        added = []
        n_labels = int(result.cells.ids.max(initial=0)) + 1
        colors = dict(zip(result.table["label"].astype(int), grade_colors(result.table)))
        for data, kwargs, layer_type in layer_tuples(result.cells, f"{name} graded", place):
            if layer_type == "labels" and kwargs["name"].endswith("cell labels"):
                kwargs["features"] = features_for_layer(result.table, None, n_labels)
                kwargs["metadata"] = {**kwargs.get("metadata", {}), "summary": result.summary}
            if layer_type == "shapes" and len(data):
                ids = kwargs["features"]["cell_id"].astype(int)
                kwargs["edge_color"] = [(*colors.get(i, UNGRADED_COLOR), 1.0) for i in ids]
                kwargs.pop("edge_colormap", None)
            added.append(getattr(self._viewer, f"add_{layer_type}")(data, **kwargs))
        self.last_layers = added  # for scripting and tests
        self.status.value = _summary_line(result.summary)


def _summary_line(summary: dict) -> str:
    counts = summary.get("counts")
    triage = summary.get("triage", {})
    if counts is None:
        return f"{summary.get('cells', 0)} cells (no grade: {summary.get('grading', 'no grading model')})"
    graded = ", ".join(f"{c} {n}" for c, n in counts.items() if n)
    scale = describe_scale(Scale(**summary["scale"])) if "scale" in summary else ""
    return f"{summary['cells']} cells: {graded} — triage: {triage.get('decision')}; {scale}"
