"""Dock widget "Analyze whole slide": a thin layer over :func:`napari_cervix.slide_analysis.analyze_slide_steps`.

The slide is a file (any format :func:`~napari_cervix.io.slides.open_slide` reads) or an image layer the
slide reader (or the synthetic-slide sample) opened. The run goes tile by tile in a ``thread_worker``
(progress per tile, cancel between tiles); finished tiles are kept in the output folder, so running
again with the same settings resumes. On return the slide and a Points layer of its cells (the per-cell
table as ``features``) are added, and the status line gives the counts per Bethesda class.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import napari
from magicgui.widgets import FileEdit, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_error

from ._common import layer_picker
from ._worker import TaskWidget

TITLE = "Analyze slide"


class Refused(NamedTuple):
    """What the worker returns when the slide pipeline refused the input (nothing was run)."""

    reason: str


class SlideWidget(TaskWidget):
    def __init__(self, viewer: napari.viewer.Viewer):  # the annotation lets napari pass its viewer in
        super().__init__(viewer, "Analyze slide")
        from ..slide_analysis import SlideSettings

        defaults = SlideSettings()
        self.slide_file = FileEdit(label="slide file", mode="r")
        self.image = layer_picker(viewer, Image, "or slide layer")
        self.out = FileEdit(label="output folder", mode="d")
        self.tile_size = SpinBox(
            label="tile size", min=2 * defaults.overlap, max=8192, step=256, value=defaults.tile_size
        )
        self.workers = SpinBox(label="workers (0: here)", min=0, max=os.cpu_count() or 1, value=0)
        self._progress = None  # the last SlideProgress shown, for the status line on cancel
        self.extend(
            [
                self.slide_file,
                self.image,
                self.out,
                self.tile_size,
                self.workers,
                self.run_button,
                self.cancel_button,
                self.status,
            ]
        )

    def chosen_slide(self) -> str:
        """The slide file's path: the file field when filled, else the chosen layer's source file."""
        picked = _path_or_none(self.slide_file.value)
        if picked is not None:
            return picked
        layer = self.image.value
        if layer is None:
            raise ValueError("choose a slide file or an image layer opened from a slide")
        path = layer.source.path or layer.metadata.get("slide_path")
        if not path:
            raise ValueError(f"layer {layer.name!r} was not opened from a file; choose the slide file instead")
        return str(path)

    def run(self, *_):
        from ..io.slides import SlideError, open_slide
        from ..slide_analysis import SlideOutputError, SlideSettings, analyze_slide_steps, results_layers

        try:
            source = self.chosen_slide()
            out = _path_or_none(self.out.value)
            if out is None:
                raise ValueError("choose an output folder")
            open_slide(source)  # lazy: checks it is a slide before any folder is made
        except (ValueError, OSError) as err:  # SlideError is a ValueError
            self._refuse(err)
            return
        settings = SlideSettings(tile_size=int(self.tile_size.value))
        workers = int(self.workers.value) or None

        def steps():
            # A refused output folder surfaces here, in the worker: it comes back as the result (a returned
            # exception would count as a crash), so the status line (main thread) can say why.
            try:
                result = yield from analyze_slide_steps(source, out, settings, workers=workers)
            except (SlideError, SlideOutputError) as err:  # other errors get the generic failure message
                return Refused(str(err))
            return result, results_layers(result.out)  # read the table off the GUI thread

        self._progress = None
        self.start(steps, self._add_layers, description=f"Analyzing {Path(source).name}", status="starting…")
        self._worker.yielded.connect(self._show_progress)
        self._worker.aborted.connect(self._show_cancelled)

    def _refuse(self, err) -> None:
        self.status.value = f"not run: {err}"
        show_error(f"{TITLE}: {err}")

    def _show_progress(self, step) -> None:
        self._progress = step
        eta = f", about {step.eta_seconds / 60:.1f} min left" if step.eta_seconds is not None else ""
        self.status.value = f"{step.done}/{step.total} tiles, {step.cells} cells{eta}"

    def _show_cancelled(self) -> None:
        step = self._progress
        done = f" after {step.done}/{step.total} tiles" if step is not None else ""
        self.status.value = f"cancelled{done}; finished tiles are kept: Run again with the same settings resumes"

    def _add_layers(self, outcome) -> None:
        if isinstance(outcome, Refused):
            self._refuse(outcome.reason)
            return
        result, layers = outcome
        self.last_layers = [getattr(self._viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in layers]
        self.status.value = summary_line(result.summary)


def _path_or_none(value) -> str | None:
    text = str(value) if value is not None else ""
    return None if text in ("", ".") else text


def summary_line(summary: dict) -> str:
    """One line: cells, tissue tiles, glass skipped, counts per Bethesda class (when graded), reviewable."""
    line = (
        f"{summary['cells']} cells in {summary['tiles_with_tissue']} tissue tiles "
        f"({summary['skipped_fraction']:.0%} glass skipped)"
    )
    counts = summary.get("per_bethesda_class")
    if counts:
        line += ": " + ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    if "reviewable" in summary:
        line += f"; {summary['reviewable']} reviewable"
    return line
