"""The one table of model kinds: what the registry, the CLI, the loaders and training read."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_cervix import registry
from napari_cervix.cards import CardError, card_from_metadata
from napari_cervix.kinds import KINDS, ClassifierKind, kind, kind_names, kind_of

SRC = Path(__file__).resolve().parents[1] / "src"


def test_table_names_every_shipped_models_kind():
    for entry in registry.list_models():
        found = kind_of(entry.card)
        assert found.name == entry.architecture and found.task == entry.task
    assert set(kind_names("classifier")) == {"ld_resnet", "mask_fusion", "feature_fusion", "descriptor_boost"}
    assert {"unet-mobilenet_v2", "residual-se-unet", "2se-unet"} <= set(kind_names("semantic"))
    assert kind_names("instances") == ("imbmdcr-net-lite", "imbmdcr-net")
    for name, found in KINDS.items():
        assert found.name == name and found.description


def test_unknown_kind_is_refused_naming_the_file_and_key():
    card = card_from_metadata({"task": "semantic", "architecture": "unet-alexnet", "classes": ["a"]}, "x.safetensors")
    with pytest.raises(CardError, match="^x.safetensors: metadata key 'architecture': unknown semantic model kind"):
        kind_of(card)
    with pytest.raises(ValueError, match="unknown classifier model kind 'unet-resnet18'"):
        kind("unet-resnet18", "classifier")  # a kind of another task


def _parser_choices(argv):
    from napari_cervix.cli import build_parser

    parser = build_parser()
    verb = next(a for a in parser._actions if a.dest == "verb").choices[argv[0]]
    sub = next(a for a in verb._actions if a.dest == "task").choices[argv[1]]
    return next(a for a in sub._actions if a.dest == argv[2]).choices


def test_cli_choices_come_from_the_table():
    assert list(_parser_choices(["train", "classifier", "arch"])) == list(kind_names("classifier"))
    assert list(_parser_choices(["train", "semantic", "arch"])) == list(kind_names("semantic"))
    assert list(_parser_choices(["train", "instances", "preset"])) == ["lite", "full"]


def test_adding_a_kind_is_one_class_and_one_table_line(monkeypatch):
    class Tiny(ClassifierKind):
        name = "tiny"
        description = "a tiny LD/ResNet for this test"
        recipe = {"epochs": 1, "size": 16}

    monkeypatch.setitem(KINDS, "tiny", Tiny())
    from napari_cervix.cells.training import shipped_recipe, train_classifier

    assert "tiny" in _parser_choices(["train", "classifier", "arch"])
    config = shipped_recipe("tiny", widths=(4, 8), blocks=1, channels_per_class=2, batch_size=8, tta=1)
    assert (config.epochs, config.size) == (1, 16)
    crops = np.random.default_rng(0).random((14, 1, 16, 16), dtype=np.float32)
    classifier = train_classifier(config, crops, np.arange(14) % 7, log=lambda m: None)
    assert classifier.kind is KINDS["tiny"] and classifier.predict_proba(crops[:3]).shape == (3, 7)


@pytest.mark.parametrize("name", ["unet-resnet18", "residual-se-unet", "2se-unet"])
def test_semantic_kinds_build_networks_from_a_card(name):
    options = {"width": 4} if name != "unet-resnet18" else {}
    card = card_from_metadata(
        {"task": "semantic", "architecture": name, "arch_options": options, "classes": ["b", "c", "n"]}
    )
    semantic = kind_of(card)
    network = semantic.build(card).eval()
    with torch.no_grad():
        probs = semantic.predict(network, torch.rand(2, 1, 64, 64))
    assert probs.shape == (2, 3, 64, 64)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 64, 64))


def test_mask_fusion_predicts_bethesda_groups():
    names, class_map, abnormal = kind("mask_fusion", "classifier").output_space()
    assert names == ["benign", "L-SIL", "H-SIL"] and abnormal == ["L-SIL", "H-SIL"] and len(class_map) == 7
    assert kind("ld_resnet", "classifier").output_space()[1] is None


def test_importing_the_table_loads_no_torch():
    code = "import sys, napari_cervix.kinds, napari_cervix.cli; print('torch' in sys.modules, 'mmdet' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=SRC)
    assert out.stdout.split() == ["False", "False"]


def _import_statements(tree):
    """(statement, at module level?) of every import in a module."""
    inside_functions = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.module != "__future__"):
            yield node, id(node) not in inside_functions


def _imported_names(node, package: str, modules) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    prefix = node.module or ""
    if node.level:
        parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        prefix = f"{parent}.{prefix}" if prefix else parent
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix for a in node.names]


def import_graph() -> dict[str, dict[str, bool]]:
    """module → {imported package module: whether imported at module level} for every napari_cervix module."""
    modules = {}
    for path in (SRC / "napari_cervix").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)

    def owner(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for module, (path, is_package) in modules.items():
        package = module if is_package else module.rpartition(".")[0]
        edges = graph[module] = {}
        for node, top_level in _import_statements(ast.parse(path.read_text())):
            for name in _imported_names(node, package, modules):
                target = owner(name) if name.startswith("napari_cervix") else None
                if target and target != module:
                    edges[target] = edges.get(target, False) or top_level
    return graph


def circles(graph, top_level_only: bool) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, found = {}, {}, [], []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w, top in graph[v].items():
            if top_level_only and not top:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while not component or v not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            strong(v)
    return found


def test_no_import_circles_through_the_kinds():
    graph = import_graph()
    assert graph["napari_cervix.cells.classifier"]["napari_cervix.kinds"]  # the graph sees real imports
    assert circles(graph, top_level_only=True) == []
    # Counting imports inside functions too: the classifier no longer imports its trainer, no kind imports a
    # trainer, and the semantic networks live apart from the by-name builder that reads the table.
    kind_modules = {m for m in graph if m.startswith("napari_cervix.kinds")}
    assert [c for c in circles(graph, top_level_only=False) if c & kind_modules] == []
    assert "napari_cervix.cells.training" not in graph["napari_cervix.cells.classifier"]
    assert not any(target.endswith((".train", ".training")) for m in kind_modules for target in graph[m])
