"""Shared plumbing for dock widgets: run a progress generator in a napari ``thread_worker``.

Capabilities expose generators that yield :class:`napari_cervix.tiling.TileProgress` (or any object
with ``done``/``total``) and *return* their result. :func:`start_worker` runs one off the GUI thread,
drives a napari progress bar, lets the user cancel (the generator is closed between tiles), and
calls ``on_result`` in the main thread, where layers are added. Errors are shown as napari
notifications instead of crashing the viewer; the user's layers are never touched by the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

from magicgui.widgets import Container, Label, PushButton
from napari.qt.threading import thread_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info

from .._compat import avoid_triton_llvm_clash


def start_worker(
    make_generator: Callable[[], Generator],
    on_result: Callable[[object], None],
    *,
    description: str,
    on_finish: Callable[[], None] | None = None,
):
    """Start ``make_generator()`` in a worker thread; returns the worker (``worker.quit()`` cancels)."""
    # napari's canvas has loaded OpenGL's LLVM by now; torch may load triton's next (see _compat).
    avoid_triton_llvm_clash()
    bar = progress(total=0, desc=description)
    state = {"last": 0}

    # ignore_errors: our own handler shows the message; without it superqt re-raises in the GUI thread.
    @thread_worker(start_thread=False, progress=False, ignore_errors=True)
    def job():
        return (yield from make_generator())

    worker = job()

    def on_yield(step):
        total = int(getattr(step, "total", 0) or 0)
        done = int(getattr(step, "done", 0) or 0)
        if total and bar.total != total:
            bar.total = total
        bar.update(done - state["last"])
        state["last"] = done

    def on_error(err):
        show_error(f"{description} failed: {err}")

    def on_aborted():
        show_info(f"{description}: cancelled, nothing was changed")

    def on_finished():
        bar.close()
        if on_finish is not None:
            on_finish()

    worker.yielded.connect(on_yield)
    worker.returned.connect(on_result)
    worker.errored.connect(on_error)
    worker.aborted.connect(on_aborted)
    worker.finished.connect(on_finished)
    worker.start()
    return worker


class TaskWidget(Container):
    """A dock widget that runs one long task at a time: Run and Cancel buttons, a status line, and the
    worker in between. Subclasses build their inputs, then call :meth:`start` from :meth:`run`."""

    def __init__(self, viewer, run_text: str):
        super().__init__()
        self._viewer = viewer
        self._worker = None
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(value="")
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)

    def run(self, *_):  # pragma: no cover - each widget defines its task
        raise NotImplementedError

    def chosen_image_and_model(self, title: str):
        """(layer, 2-D data, model) from the widget's ``image``/``model`` pickers, or None after telling
        the user what is missing."""
        from ._common import chosen_model, plane_of

        layer = self.image.value
        if layer is None:
            show_error(f"{title}: choose an image layer first")
            return None
        try:
            return layer, plane_of(layer, self._viewer), chosen_model(self.model, self.model_file)
        except ValueError as err:
            show_error(f"{title}: {err}")
            return None

    def start(self, make_generator, on_result, *, description: str, status: str) -> None:
        self._set_running(True)
        self.status.value = status
        self._worker = start_worker(
            make_generator, on_result, description=description, on_finish=lambda: self._set_running(False)
        )

    def cancel(self, *_):
        if self._worker is not None:
            self._worker.quit()
            self.status.value = "cancelling…"

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        if not running:
            self._worker = None
