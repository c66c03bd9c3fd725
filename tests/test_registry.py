import hashlib
import http.server
import json
import threading
from functools import partial

import numpy as np
import pytest
import torch

from napari_cervix import registry
from napari_cervix.cards import COLORS
from napari_cervix.registry import ModelEntry, RegistryError

SEMANTIC_META = {
    "task": "semantic",
    "architecture": "unet-resnet18",
    "classes": ["background", "cytoplasm", "nucleus"],
    "in_channels": 1,
    "normalization": {"kind": "percentile", "low": 1.0, "high": 99.5},
}
CLASSIFIER_META = {
    "task": "classifier",
    "architecture": "ld_resnet",
    "classes": ["normal", "abnormal"],
    "abnormal_classes": ["abnormal"],
    "input": {"size": 32, "channels": 1},
}


def _weights(folder, meta=SEMANTIC_META):
    path = folder / "w.safetensors"
    sha = registry.save_weights({"a": torch.arange(6.0).reshape(2, 3)}, path, meta)
    return path, sha


def test_save_and_read_back_with_metadata(tmp_path):
    path, sha = _weights(tmp_path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert registry.read_metadata(path) == SEMANTIC_META
    np.testing.assert_array_equal(registry.load_state_dict(path)["a"].numpy(), np.arange(6.0).reshape(2, 3))
    assert not list(tmp_path.glob("*.tmp"))


def test_resolve_file_checks_task(tmp_path):
    path, _ = _weights(tmp_path, CLASSIFIER_META)
    assert registry.resolve(str(path), "classifier")[1].task == "classifier"
    with pytest.raises(RegistryError, match="is a classifier model, not a semantic model"):
        registry.resolve(str(path), "semantic")


def test_resolve_unknown_name_lists_known(tmp_path):
    with pytest.raises(RegistryError, match="neither a registered semantic model \\(unet-mobilenet_v2"):
        registry.resolve("no-such-model", "semantic")


def test_non_safetensors_file_is_refused_clearly(tmp_path):
    bogus = tmp_path / "x.safetensors"
    bogus.write_bytes(b"not a weights file at all")
    with pytest.raises(RegistryError, match="not a safetensors"):
        registry.read_metadata(bogus)


def test_shipped_entry_hash_mismatch_is_detected(tmp_path, monkeypatch):
    path, sha = _weights(tmp_path)
    monkeypatch.setattr(registry, "weights_dir", lambda: tmp_path)
    good = ModelEntry("m", sha256=sha, file=path.name)
    assert registry.fetch_weights(good) == path
    assert good.task == "semantic" and good.architecture == "unet-resnet18"  # from the file, not the registry
    bad = ModelEntry("m", sha256="0" * 64, file=path.name)
    with pytest.raises(RegistryError, match="corrupt or was replaced"):
        registry.fetch_weights(bad)


@pytest.fixture
def local_server(tmp_path):
    """A loopback HTTP server over a folder: hosted weights are fetched for real, from this machine."""
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_hosted_weights_download_once_into_cache(tmp_path, local_server, monkeypatch):
    root, url = local_server
    path, sha = _weights(root)
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    entry = ModelEntry("hosted", sha256=sha, url=f"{url}/{path.name}", hosted_card=SEMANTIC_META)
    assert entry.task == "semantic"  # known before anything is downloaded
    first = registry.fetch_weights(entry)
    assert first.parent == tmp_path / "cache" and registry.sha256_of(first) == sha
    path.unlink()  # the cache serves the second call without the server's file
    assert registry.fetch_weights(entry) == first


def test_hosted_weights_with_wrong_hash_are_refused(tmp_path, local_server, monkeypatch):
    root, url = local_server
    path, _ = _weights(root)
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    entry = ModelEntry("hosted", sha256="f" * 64, url=f"{url}/{path.name}", hosted_card=SEMANTIC_META)
    with pytest.raises(RegistryError, match="failed its check"):
        registry.fetch_weights(entry)


def test_hosted_entry_without_its_card_is_refused():
    entry = ModelEntry("hosted", sha256="f" * 64, url="http://127.0.0.1:1/x.safetensors")
    with pytest.raises(RegistryError, match="needs the card"):
        _ = entry.task


def test_registry_records_hold_no_copied_metadata():
    """Shipped entries: name, file, sha256, description, default_for — the card comes from the file."""
    raw = json.loads((registry.weights_dir() / registry.REGISTRY_FILE).read_text())
    names = [m["name"] for m in raw["models"]]
    assert len(names) == len(set(names))
    for record in raw["models"]:
        assert set(record) <= {"name", "file", "sha256", "description", "default_for"}, record["name"]
    for entry in registry.load_registry().values():
        path = registry.fetch_weights(entry)  # checks the sha256: the shipped files were not rewritten
        assert registry.read_card(path).task == entry.task


def test_unknown_registry_keys_are_refused(tmp_path):
    path = tmp_path / registry.REGISTRY_FILE
    path.write_text(json.dumps({"models": [{"name": "m", "sha256": "0", "file": "m.safetensors", "task": "x"}]}))
    with pytest.raises(RegistryError, match=r"entry 'm' has unknown keys \['task'\]"):
        registry.load_registry(path)


def test_one_default_per_task_and_color():
    for task in ("semantic", "instances", "classifier"):
        for color in COLORS:
            entry = registry.default_model(task, color)
            assert color in entry.default_for and entry.task == task
    assert registry.default_model("classifier", "gray").name == "classifier-ld-resnet-gray"
    assert registry.default_model("classifier", "rgb").name == "classifier-descriptor-boost-rgb"
    assert registry.default_model("classifier").name == "classifier-ld-resnet-gray"  # no image: gray
    with pytest.raises(RegistryError, match="color must be one of"):
        registry.default_model("classifier", "cmyk")


def test_two_defaults_for_one_color_are_refused(tmp_path, monkeypatch):
    path, sha = _weights(tmp_path)
    monkeypatch.setattr(registry, "weights_dir", lambda: tmp_path)
    records = [{"name": n, "sha256": sha, "file": path.name, "default_for": ["gray"]} for n in ("a", "b")]
    (tmp_path / registry.REGISTRY_FILE).write_text(json.dumps({"models": records}))
    with pytest.raises(RegistryError, match="2 default semantic models for gray images: a, b"):
        registry.default_model("semantic", "gray")
