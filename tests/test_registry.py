import hashlib
import http.server
import json
import threading
from functools import partial

import numpy as np
import pytest
import torch

from napari_cervix import registry
from napari_cervix.registry import ModelEntry, RegistryError


def _weights(tmp_path, task="semantic"):
    path = tmp_path / "w.safetensors"
    sha = registry.save_weights({"a": torch.arange(6.0).reshape(2, 3)}, path, {"task": task, "architecture": "x"})
    return path, sha


def test_save_and_read_back_with_metadata(tmp_path):
    path, sha = _weights(tmp_path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert registry.read_metadata(path) == {"task": "semantic", "architecture": "x"}
    np.testing.assert_array_equal(registry.load_state_dict(path)["a"].numpy(), np.arange(6.0).reshape(2, 3))
    assert not list(tmp_path.glob("*.tmp"))


def test_resolve_file_checks_task(tmp_path):
    path, _ = _weights(tmp_path, task="classifier")
    assert registry.resolve(str(path), "classifier")[1]["task"] == "classifier"
    with pytest.raises(RegistryError, match="not a semantic model"):
        registry.resolve(str(path), "semantic")


def test_resolve_unknown_name_lists_known(tmp_path):
    with pytest.raises(RegistryError, match="neither a registered"):
        registry.resolve("no-such-model", "semantic")


def test_non_safetensors_file_is_refused_clearly(tmp_path):
    bogus = tmp_path / "x.safetensors"
    bogus.write_bytes(b"not a weights file at all")
    with pytest.raises(RegistryError, match="not a safetensors"):
        registry.read_metadata(bogus)


def test_shipped_entry_hash_mismatch_is_detected(tmp_path, monkeypatch):
    path, sha = _weights(tmp_path)
    monkeypatch.setattr(registry, "weights_dir", lambda: tmp_path)
    good = ModelEntry("m", "semantic", "x", sha256=sha, file=path.name)
    assert registry.fetch_weights(good) == path
    bad = ModelEntry("m", "semantic", "x", sha256="0" * 64, file=path.name)
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
    entry = ModelEntry("hosted", "semantic", "x", sha256=sha, url=f"{url}/{path.name}")
    first = registry.fetch_weights(entry)
    assert first.parent == tmp_path / "cache" and registry.sha256_of(first) == sha
    path.unlink()  # the cache serves the second call without the server's file
    assert registry.fetch_weights(entry) == first


def test_hosted_weights_with_wrong_hash_are_refused(tmp_path, local_server, monkeypatch):
    root, url = local_server
    path, _ = _weights(root)
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    entry = ModelEntry("hosted", "semantic", "x", sha256="f" * 64, url=f"{url}/{path.name}")
    with pytest.raises(RegistryError, match="failed its check"):
        registry.fetch_weights(entry)


def test_registry_file_entries_are_consistent():
    """Every shipped entry's file exists and matches its sha256 and its own metadata's task."""
    for entry in registry.load_registry().values():
        if entry.file:
            path = registry.fetch_weights(entry)
            assert registry.read_metadata(path)["task"] == entry.task
    raw = json.loads((registry.weights_dir() / registry.REGISTRY_FILE).read_text())
    names = [m["name"] for m in raw["models"]]
    assert len(names) == len(set(names))
