"""Small pieces shared by the dock widgets: layer pickers, model pickers, layer geometry."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, FileEdit, FloatSpinBox

from ..registry import DEFAULT

CUSTOM_FILE = "file…"
DEFAULT_CHOICE = "default (chosen for this image)"


def layer_picker(viewer, layer_type, label: str) -> ComboBox:
    """A combo box of the viewer's layers of one type, kept up to date as layers come and go."""
    box = ComboBox(
        label=label, choices=lambda _w: [lyr for lyr in viewer.layers if isinstance(lyr, layer_type)], nullable=True
    )

    def refresh(*_):
        box.reset_choices()
        if box.value is None and box.choices[1:]:
            box.value = box.choices[-1]  # pick the newest layer rather than leaving the box empty

    viewer.layers.events.inserted.connect(refresh)
    viewer.layers.events.removed.connect(refresh)
    refresh()
    return box


def model_picker(task: str) -> tuple[ComboBox, FileEdit]:
    """ "default (chosen for this image)", the task's registered models, and a 'file…' choice enabling a
    file field. The default is resolved when the task runs, by the registry's rule for that image — the
    same rule the console functions and the CLI apply to ``model="default"``."""
    from ..registry import list_models

    names = [DEFAULT_CHOICE] + [e.name for e in list_models(task)] + [CUSTOM_FILE]
    box = ComboBox(label="model", choices=names, value=DEFAULT_CHOICE)
    file = FileEdit(label="weights file", filter="*.safetensors", visible=False)
    box.changed.connect(lambda value: setattr(file, "visible", value == CUSTOM_FILE))
    return box, file


def chosen_model(box: ComboBox, file: FileEdit):
    """What to pass as ``model=``: "default", a registered name, or the chosen weights file."""
    if box.value == DEFAULT_CHOICE:
        return DEFAULT
    if box.value == CUSTOM_FILE:
        path = str(file.value)
        if not path or path == ".":
            raise ValueError("choose a weights file (.safetensors) or a registered model")
        return path
    return box.value


def plane_of(layer, viewer) -> np.ndarray | object:
    """The 2-D (or RGB) data to process: the highest resolution level, the displayed plane of a stack."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    spatial = 3 if getattr(layer, "rgb", False) else 2
    if data.ndim > spatial:
        step = viewer.dims.current_step[: data.ndim - spatial]
        data = data[tuple(int(s) for s in step)]
    return data


def geometry(layer) -> dict:
    """scale/translate of the last two (spatial) axes, so results sit on top of their image."""
    n = 2
    return {"scale": tuple(layer.scale[-n:]), "translate": tuple(layer.translate[-n:])}


def pixel_size_box() -> FloatSpinBox:
    """The image's µm per pixel; 0 = take it from the layer's scale, else estimate it from the nuclei."""
    return FloatSpinBox(
        label="pixel size (µm)",
        value=0.0,
        min=0.0,
        max=100.0,
        step=0.01,
        tooltip="µm per pixel of the image. 0: the image layer's scale when it is set (not 1), "
        "otherwise estimated from the image's nuclei. Models run at their training pixel size.",
    )


def pixel_size_of(layer, box: FloatSpinBox) -> float | None:
    """The pixel size to run ``layer`` at: the box's value, else the layer's (isotropic) scale when it
    was set, else None (estimated). napari's default scale of 1 counts as not set."""
    if box.value > 0:
        return float(box.value)
    sy, sx = (float(v) for v in layer.scale[-2:])
    if sy == sx and sy != 1.0 and sy > 0:
        return sy
    return None
