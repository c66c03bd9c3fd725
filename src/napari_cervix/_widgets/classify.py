"""Dock widget "Classify cells": measurements + predicted class per cell, as the Labels layer's features.

A thin layer over :func:`napari_cervix.cells.classify.classify_cells_steps`: the work runs in a napari
``thread_worker`` (progress bar, cancel); the result becomes ``layer.features`` (row i = label i, background
row 0, a ``label`` column; columns the user added are kept), the labels are colored by predicted class, a
summary of counts per class is shown, and "Export CSV" writes the table atomically.
"""

from __future__ import annotations

import contextlib

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, FileEdit, PushButton, SpinBox
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_error, show_info

from ..tables import features_for_layer
from ._common import chosen_model, layer_picker, model_picker, plane_of
from ._worker import TaskWidget

#: Normal classes in cool colors, abnormal ones from yellow to deep red (severity reads at a glance).
CLASS_COLORS = {
    "normal_superficiel": (0.55, 0.85, 1.0, 1.0),
    "normal_intermediate": (0.25, 0.6, 1.0, 1.0),
    "normal_columnar": (0.3, 0.85, 0.55, 1.0),
    "light_dysplastic": (1.0, 0.9, 0.2, 1.0),
    "moderate_dysplastic": (1.0, 0.6, 0.1, 1.0),
    "severe_dysplastic": (0.95, 0.3, 0.1, 1.0),
    "carcinoma_in_situ": (0.7, 0.0, 0.2, 1.0),
    "benign": (0.25, 0.6, 1.0, 1.0),
    "L-SIL": (1.0, 0.8, 0.1, 1.0),
    "H-SIL": (0.85, 0.1, 0.15, 1.0),
}
OTHER_COLOR = (0.8, 0.8, 0.8, 1.0)
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def class_colormap(table: pd.DataFrame) -> DirectLabelColormap:
    colors = {None: TRANSPARENT, 0: TRANSPARENT}
    for label, name in zip(table["label"], table["predicted_class"]):
        colors[int(label)] = CLASS_COLORS.get(str(name), OTHER_COLOR)
    return DirectLabelColormap(color_dict=colors)


def class_summary(table: pd.DataFrame) -> str:
    if not len(table):
        return "no cells"
    counts = table["predicted_class"].value_counts()
    lines = [f"{name}: {int(count)}" for name, count in counts.items() if count]
    reviewable = int(table["reviewable"].sum())
    return f"{len(table)} cells, {reviewable} reviewable\n" + "\n".join(lines)


def write_csv_atomic(table: pd.DataFrame, path) -> None:
    from ..io._atomic import atomic_path

    with atomic_path(path) as tmp:  # an interrupted export never leaves a truncated CSV
        table.to_csv(tmp, index=False)


class ClassifyWidget(TaskWidget):
    def __init__(self, viewer: napari.viewer.Viewer):  # the annotation lets napari pass its viewer in
        super().__init__(viewer, "Classify")
        self.summary = self.status  # the status line shows the counts per class when done
        self._table: pd.DataFrame | None = None
        self.image = layer_picker(viewer, Image, "image")
        self.cells = layer_picker(viewer, Labels, "cells")
        self.nuclei = layer_picker(viewer, Labels, "nuclei (optional)")
        self.nuclei.value = None  # nuclei are optional: start without, unlike the pickers' newest-layer default
        self.model, self.model_file = model_picker("classifier")
        self.isolate = CheckBox(text="hide neighbouring cells in crops", value=True)
        self.tta = SpinBox(
            label="test-time views",
            value=8,
            min=1,
            max=8,
            tooltip="flips/rotations averaged per cell: 8 as validated, 1 is 8× faster",
        )
        self.export_path = FileEdit(label="CSV file", mode="w", filter="*.csv")
        self.export_button = PushButton(text="Export CSV", enabled=False)
        self.extend(
            [
                self.image,
                self.cells,
                self.nuclei,
                self.model,
                self.model_file,
                self.isolate,
                self.tta,
                self.run_button,
                self.cancel_button,
                self.summary,
                self.export_path,
                self.export_button,
            ]
        )
        self.export_button.changed.connect(self.export)

    # ---------------------------------------------------------------------------------- actions
    def run(self, *_):
        from ..cells.classify import classify_cells_steps

        image_layer, cells_layer, nuclei_layer = self.image.value, self.cells.value, self.nuclei.value
        if image_layer is None or cells_layer is None:
            show_error("Classify: choose an image layer and a cells (Labels) layer first")
            return
        try:
            image = np.asarray(plane_of(image_layer, self._viewer))
            cells = np.asarray(plane_of(cells_layer, self._viewer))
            nuclei = (
                None
                if nuclei_layer is None or nuclei_layer is cells_layer
                else np.asarray(plane_of(nuclei_layer, self._viewer))
            )
            model = chosen_model(self.model, self.model_file)
        except ValueError as err:
            show_error(f"Classify: {err}")
            return
        if cells.shape[:2] != image.shape[:2]:
            show_error(
                f"Classify: cells layer is {cells.shape[0]}×{cells.shape[1]} but the image is "
                f"{image.shape[0]}×{image.shape[1]}; they must cover the same pixels"
            )
            return
        if not cells.any():
            show_error(f"Classify: layer {cells_layer.name!r} has no cells (all labels are 0)")
            return
        isolate, tta = self.isolate.value, self.tta.value
        self.start(
            lambda: classify_cells_steps(image, cells, nuclei, model, isolate=isolate, tta=tta),
            lambda table: self._show(table, cells_layer),
            description=f"Classifying {cells_layer.name}",
            status=f"classifying cells of {cells_layer.name}…",
        )

    def export(self, *_):
        if self._table is None:
            show_error("Export: classify cells first")
            return
        path = str(self.export_path.value)
        if not path or path == ".":
            show_error("Export: choose a CSV file name")
            return
        try:
            write_csv_atomic(self._table, path)
        except OSError as err:
            show_error(f"Export failed: {err}")
            return
        show_info(f"wrote {len(self._table)} cells to {path}")

    # --------------------------------------------------------------------------------- results
    def _show(self, table: pd.DataFrame, layer: Labels):
        self._table = table
        n_labels = int(np.asarray(plane_of(layer, self._viewer)).max()) + 1
        existing = layer.features if len(layer.features.columns) else None
        layer.features = features_for_layer(table, existing, n_labels)
        if len(table):
            layer.colormap = class_colormap(table)
        self.summary.value = class_summary(table)
        self.export_button.enabled = True
        self._open_table_widget(layer)

    def _open_table_widget(self, layer: Labels):
        """napari's own features table (napari ≥ 0.5 ships one in napari-builtins), when available."""
        window = getattr(self._viewer, "window", None)
        if window is None or not hasattr(window, "add_plugin_dock_widget"):
            return
        self._viewer.layers.selection.active = layer
        # An older napari without the widget: the features are still set.
        with contextlib.suppress(Exception):
            window.add_plugin_dock_widget("napari", "Features table widget")
