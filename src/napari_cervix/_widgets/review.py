"""Dock widget "Review cells": a gallery of the most suspicious cells, jump-to-cell, decisions that persist.

A thin Qt view of :mod:`napari_cervix.review`: the cells layer's ``features`` (from *Classify cells*, or any
table with ``label``, ``centroid_y``/``centroid_x``, a class and an abnormal probability) are ordered most
suspicious first; a page of thumbnails is read lazily from the image layer in a worker thread; clicking a
thumbnail (or Enter) centres the camera on the cell, zooms in and marks it. Keys: N / → next, P / ← previous,
A accept, R reject, 1–6 accept as NILM, ASC-US, LSIL, ASC-H, HSIL, SCC. Each decision is appended to the
decisions file at once and shown in the layer's features (``review_decision``, ``reviewed_class``,
``reviewed_at``); the model's own columns are never changed. Reopening the widget on the same layer and file
restores every decision.
"""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton, SpinBox
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import QListView, QListWidget, QListWidgetItem

from .. import review
from ._common import layer_picker, plane_of

BETHESDA_KEYS = ("NILM", "ASC-US", "LSIL", "ASC-H", "HSIL", "SCC")
ALL_CLASSES = "all classes"
THUMBNAIL = 96
MARKER = "review: current cell"


def default_decisions_file(layer) -> Path:
    """Beside the results when the layer knows where they are, else in the user's review folder."""
    results = layer.metadata.get("results_path") if layer is not None else None
    if results:
        return review.sidecar_path(results)
    name = layer.name if layer is not None else "cells"
    return Path.home() / ".napari-cervix" / "reviews" / f"{name}.review.jsonl"


def cell_rows(table) -> np.ndarray:
    """Row positions of real cells: a Labels layer's features have a background row (label 0)."""
    return np.flatnonzero(table[review.id_column(table)].fillna(0).to_numpy() > 0)


def _icon(pixels: np.ndarray) -> QIcon:
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    image = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QIcon(QPixmap.fromImage(image.copy()))  # copy: the QImage must not outlive the numpy buffer


class Gallery(QListWidget):
    """Thumbnails in a grid; review keys go to :attr:`keys` (Qt key → action) before list navigation."""

    def __init__(self):
        super().__init__()
        self.keys = {}

    def keyPressEvent(self, event):  # noqa: N802 - Qt's name
        action = self.keys.get(event.key())
        if action is None:
            super().keyPressEvent(event)
        else:
            action()


class ReviewWidget(Container):
    def __init__(self, viewer: napari.viewer.Viewer):  # the annotation lets napari pass its viewer in
        super().__init__()
        self._viewer = viewer
        self._order = np.zeros(0, int)
        self._worker = None
        self.image = layer_picker(viewer, Image, "image")
        self.cells = layer_picker(viewer, (Labels, Points, Shapes), "cells (with a table)")
        self.classes = ComboBox(label="show", choices=[ALL_CLASSES], value=ALL_CLASSES)
        self.page_size = SpinBox(label="per page", value=100, min=10, max=500, step=10)
        self.page_number = SpinBox(label="page", value=1, min=1, max=1)
        self.decisions_file = FileEdit(label="decisions file", mode="w", filter="*.jsonl")
        self.load_button = PushButton(text="Load gallery")
        self.results_folder = FileEdit(label="slide results", mode="d")
        self.open_results_button = PushButton(text="Open slide results")
        self.report_path = FileEdit(label="report", mode="w", filter="*.html")
        self.report_button = PushButton(text="Write report")
        self.summary = Label(value="")
        self.gallery = Gallery()
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.gallery.setResizeMode(QListView.ResizeMode.Adjust)
        self.gallery.setMinimumHeight(3 * (THUMBNAIL + 40))
        self.extend(
            [
                self.results_folder,
                self.open_results_button,
                self.image,
                self.cells,
                self.decisions_file,
                self.classes,
                self.page_size,
                self.page_number,
                self.load_button,
            ]
        )
        self.native.layout().addWidget(self.gallery)
        self.extend([self.summary, self.report_path, self.report_button])
        self.load_button.changed.connect(self.load)
        self.open_results_button.changed.connect(self.open_results)
        self.classes.changed.connect(lambda *_: self.load())
        self.page_number.changed.connect(lambda *_: self.show_page())
        self.page_size.changed.connect(lambda *_: self.show_page())
        self.report_button.changed.connect(self.write_report)
        self.gallery.itemClicked.connect(lambda item: self.go_to(self.gallery.row(item)))
        self.gallery.itemActivated.connect(lambda item: self.go_to(self.gallery.row(item)))
        self._bind_keys()

    # ------------------------------------------------------------------------------------- inputs
    def _bind_keys(self) -> None:
        keys = {Qt.Key.Key_N: self.next, Qt.Key.Key_Right: self.next}
        keys.update({Qt.Key.Key_P: self.previous, Qt.Key.Key_Left: self.previous})
        keys.update({Qt.Key.Key_A: lambda: self.decide("accept"), Qt.Key.Key_R: lambda: self.decide("reject")})
        for digit, name in enumerate(BETHESDA_KEYS, start=1):
            keys[getattr(Qt.Key, f"Key_{digit}")] = lambda name=name: self.decide("accept", name)
        self.gallery.keys = keys

    def open_results(self, *_):
        """Add a slide-analysis folder's slide (multiscale) and cell points, then load their gallery."""
        from ..slide_analysis import SlideOutputError, results_layers

        folder = str(self.results_folder.value)
        try:
            (image, image_kwargs, _), (points, points_kwargs, _) = results_layers(folder)
        except (SlideOutputError, OSError, ValueError) as err:
            show_error(f"Review: {err}")
            return
        image_layer = self._viewer.add_image(image, **image_kwargs)
        cells_layer = self._viewer.add_points(points, **points_kwargs)
        self.image.value, self.cells.value = image_layer, cells_layer
        self.decisions_file.value = default_decisions_file(cells_layer)
        self.load()

    def table(self):
        layer = self.cells.value
        return None if layer is None else layer.features

    def log(self) -> review.DecisionLog:
        path = str(self.decisions_file.value)
        if not path or path == ".":
            self.decisions_file.value = default_decisions_file(self.cells.value)
        return review.DecisionLog(self.decisions_file.value)

    # ------------------------------------------------------------------------------------ gallery
    def load(self, *_):
        """Read the table and the saved decisions, order the cells, show the first page."""
        layer = self.cells.value
        if layer is None or self.image.value is None:
            show_error("Review: choose an image layer and a cells layer with a table first")
            return
        table = layer.features
        try:
            review.score_column(table)
            review.class_column(table)
            restored = self.log().load()
        except (review.ReviewError, OSError) as err:
            show_error(f"Review: {err}")
            return
        layer.features = review.with_decisions(table, restored)
        valid = cell_rows(layer.features)
        cells = layer.features.iloc[valid]
        classes = [ALL_CLASSES, *sorted(cells[review.class_column(cells)].dropna().astype(str).unique())]
        if list(self.classes.choices) != classes:
            with self.classes.changed.blocked():
                self.classes.choices = classes
        wanted = None if self.classes.value in (None, ALL_CLASSES) else self.classes.value
        self._order = valid[review.gallery_order(cells, wanted)]
        pages = max(1, -(-len(self._order) // self.page_size.value))
        self.page_number.max = pages
        self.show_page()

    def current_rows(self) -> np.ndarray:
        return review.page(self._order, self.page_number.value - 1, self.page_size.value)

    def show_page(self) -> None:
        """Fill the gallery with the current page; thumbnails are read off the GUI thread."""
        from napari.qt.threading import thread_worker

        rows = self.current_rows()
        table = self.table()
        if table is None or not len(rows):
            self.gallery.clear()
            self._update_summary()
            return
        image_layer = self.image.value
        data = image_layer.data[0] if image_layer.multiscale else plane_of(image_layer, self._viewer)

        @thread_worker(start_thread=False)
        def read():
            return review.thumbnails(data, table, rows, THUMBNAIL)

        worker = read()
        worker.returned.connect(lambda crops: self._fill(rows, crops))
        worker.errored.connect(lambda err: show_error(f"Review: could not read thumbnails: {err}"))
        worker.finished.connect(lambda: setattr(self, "_worker", None))
        self._worker = worker
        worker.start()

    def _fill(self, rows, crops) -> None:
        table = self.table()
        ids, classes, scores = (f(table) for f in (review.id_column, review.class_column, review.score_column))
        self.gallery.clear()
        for row, crop in zip(rows, crops):
            record = table.iloc[int(row)]
            item = QListWidgetItem(_icon(crop), self._caption(record, ids, classes, scores))
            item.setData(Qt.ItemDataRole.UserRole, int(row))
            self.gallery.addItem(item)
        self._update_summary()

    @staticmethod
    def _caption(record, ids, classes, scores) -> str:
        decision = record.get("review_decision")
        mark = {"accept": "✔", "reject": "✘"}.get(decision, "")
        reviewed = record.get("reviewed_class")
        shown = reviewed if isinstance(reviewed, str) else record[classes]
        return f"{int(record[ids])} {mark}\n{shown} {float(record[scores]):.2f}"

    # ------------------------------------------------------------------------------------ actions
    def go_to(self, index: int) -> None:
        """Centre and zoom the viewer on the gallery's ``index``-th cell and mark it."""
        if not 0 <= index < self.gallery.count():
            return
        self.gallery.setCurrentRow(index)
        row = int(self.gallery.item(index).data(Qt.ItemDataRole.UserRole))
        record = self.table().iloc[row]
        world = self.image.value.data_to_world((float(record["centroid_y"]), float(record["centroid_x"])))
        world = tuple(float(v) for v in world[-2:])
        self._viewer.camera.center = world
        self._viewer.camera.zoom = max(self._viewer.camera.zoom, 2.0 / float(np.mean(self.image.value.scale[-2:])))
        if MARKER in self._viewer.layers:
            self._viewer.layers[MARKER].data = [world]
        else:
            self._viewer.add_points(
                [world], name=MARKER, symbol="ring", size=24 * float(np.mean(self.image.value.scale[-2:])),
                face_color="transparent", border_color="yellow", border_width=0.08,
            )  # fmt: skip
            self._viewer.layers.selection.active = self.cells.value

    def next(self) -> None:
        self.go_to(min(self.gallery.currentRow() + 1, self.gallery.count() - 1))

    def previous(self) -> None:
        self.go_to(max(self.gallery.currentRow() - 1, 0))

    def decide(self, decision: str, reviewed_class: str | None = None) -> None:
        """Record a decision on the current cell (saved at once), then move to the next one."""
        index = self.gallery.currentRow()
        if index < 0:
            return
        row = int(self.gallery.item(index).data(Qt.ItemDataRole.UserRole))
        layer = self.cells.value
        table = layer.features
        cell = int(table.iloc[row][review.id_column(table)])
        try:
            entry = self.log().record(cell, decision, reviewed_class)
        except OSError as err:
            show_error(f"Review: the decision was not saved: {err}")
            return
        # The log is the record; the table shows it. Only this row changes: no re-reading of the whole log.
        features = table.copy()
        for column, value in zip(review.REVIEW_COLUMNS, (entry.decision, entry.reviewed_class, entry.reviewed_at)):
            features.iloc[row, features.columns.get_loc(column)] = value
        layer.features = features
        record = features.iloc[row]
        ids, classes, scores = (f(table) for f in (review.id_column, review.class_column, review.score_column))
        self.gallery.item(index).setText(self._caption(record, ids, classes, scores))
        self._update_summary()
        self.next()

    def _update_summary(self) -> None:
        table = self.table()
        if table is None or not len(table):
            self.summary.value = ""
            return
        facts = review.summarize(table.iloc[cell_rows(table)])
        self.summary.value = (
            f"{facts['cells']} cells, {facts['reviewable'] or 0} reviewable, {facts['reviewed']} reviewed\n"
            f"most severe: predicted {facts['most_severe_predicted'] or '–'}, "
            f"confirmed {facts['most_severe_confirmed'] or '–'}\n"
            f"triage: {facts['triage_predicted']} (model), {facts['triage_confirmed']} (reviewer)\n"
            f"adequacy (estimate): {facts['adequacy_estimate']['squamous_cells']} of "
            f"{facts['adequacy_estimate']['minimum']} squamous cells"
        )

    def write_report(self, *_):
        from ..report import review_report

        table, image_layer = self.table(), self.image.value
        path = str(self.report_path.value)
        if table is None or image_layer is None:
            show_error("Review: load a gallery first")
            return
        if not path or path == ".":
            show_error("Review: choose a report file name (.html)")
            return
        cells = table.iloc[cell_rows(table)]
        data = image_layer.data[0] if image_layer.multiscale else plane_of(image_layer, self._viewer)
        try:
            models = self.cells.value.metadata.get("models")  # slide results know the models that made them
            html_path, _ = review_report(cells, data, path, image_name=image_layer.name, models=models)
        except OSError as err:
            show_error(f"Review: the report was not written: {err}")
            return
        show_info(f"wrote {html_path}")
