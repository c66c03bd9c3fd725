"""The npe2 manifest as the napari hub and napari read it: valid, every menu entry a declared widget in a menu
napari lets plugins contribute to, and present in a real viewer's Layers menus (run under xvfb-run)."""

import pytest
from npe2 import PluginManifest

napari = pytest.importorskip("napari")


@pytest.fixture(scope="module")
def manifest():
    # What `npe2 validate napari-cervix` loads: the installed distribution's manifest, schema-checked.
    return PluginManifest.from_distribution("napari-cervix")


def test_every_menu_entry_opens_a_declared_widget(manifest):
    commands = {command.id for command in manifest.contributions.commands}
    widgets = {widget.command for widget in manifest.contributions.widgets}
    entries = [item.command for items in manifest.contributions.menus.values() for item in items]
    assert entries, "the manifest contributes no menu entries"
    assert set(entries) <= commands
    assert set(entries) <= widgets  # a menu entry docks its widget
    assert widgets <= set(entries)  # and every widget has a place in the Layers menus


def test_menus_are_ones_napari_lets_plugins_fill(manifest):
    from napari._app_model.constants._menus import is_menu_contributable

    for menu_id in manifest.contributions.menus:
        assert menu_id.startswith("napari/layers/") and is_menu_contributable(menu_id), menu_id


def test_menu_entries_appear_in_the_viewer(make_napari_viewer, manifest):
    from napari._app_model import get_app_model

    make_napari_viewer()
    menus = get_app_model().menus
    for menu_id, items in manifest.contributions.menus.items():
        shown = {entry.command.id for entry in menus.get_menu(menu_id) if hasattr(entry, "command")}
        assert {item.command for item in items} <= shown, menu_id
