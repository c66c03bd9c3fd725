import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_cervix.cli import build_parser, main
from napari_cervix.io import write_coco
from napari_cervix.synth import generate_smear


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for verb in ("demo", "segment", "classify", "evaluate", "train"):
        assert verb in out


def test_parser_has_the_semantic_tasks():
    parser = build_parser()
    args = parser.parse_args(["train", "semantic", "--dataset", "isbi2014:x", "--out", "o"])
    assert args.arch == "unet-resnet18" and args.dataset == ["isbi2014:x"]


def test_segment_semantic_writes_label_images(tmp_path, tiny_semantic_weights, capsys):
    image = generate_smear(shape=(96, 128), n_cells=(1, 3), cell_radius=(15, 30), seed=1).image
    tifffile.imwrite(tmp_path / "a.tif", image)
    assert (
        main(
            [
                "segment",
                "semantic",
                str(tmp_path / "a.tif"),
                "--out",
                str(tmp_path / "out"),
                "--model",
                tiny_semantic_weights,
                "--tile-size",
                "64",
                "--overlap",
                "16",
            ]
        )
        == 0
    )
    labels = tifffile.imread(tmp_path / "out" / "a_semantic.tif")
    assert labels.shape == image.shape and labels.dtype == np.uint8 and labels.max() <= 2


def test_evaluate_semantic_prints_the_documented_json(tmp_path, tiny_semantic_weights, capsys):
    samples = [generate_smear(shape=(64, 64), n_cells=(1, 2), cell_radius=(12, 20), seed=s) for s in (1, 2)]
    for i, s in enumerate(samples):
        s.name = f"img{i}"
    write_coco(samples, tmp_path / "set.json")
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "semantic",
                "--model",
                tiny_semantic_weights,
                "--dataset",
                f"coco:{tmp_path / 'set.json'}",
                "--split",
                "all",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert {"MPA", "mIoU", "dice", "precision", "recall"} <= set(result)
    assert set(result["dice"]) == {"background", "cytoplasm", "nucleus"}
    assert 0 <= result["MPA"] <= 1


def test_user_errors_are_one_line_messages(tmp_path, capsys):
    code = main(["segment", "semantic", str(tmp_path / "missing.tif"), "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing.tif" in err and "Traceback" not in err


def test_train_semantic_runs_and_resumes(tmp_path, capsys):
    samples = [generate_smear(shape=(96, 96), n_cells=(1, 3), cell_radius=(15, 30), seed=s) for s in range(4)]
    for i, s in enumerate(samples):
        s.name = f"s{i}"
    write_coco(samples, tmp_path / "train.json")
    common = [
        "train",
        "semantic",
        "--arch",
        "2se-unet",
        "--arch-options",
        '{"width": 4}',
        "--dataset",
        f"coco:{tmp_path / 'train.json'}",
        "--out",
        str(tmp_path / "run"),
        "--batch-size",
        "2",
        "--crop",
        "64",
        "--val-every",
        "2",
        "--workers",
        "0",
    ]
    assert main(common + ["--steps", "2"]) == 0
    assert (tmp_path / "run" / "best.safetensors").exists() and (tmp_path / "run" / "last.pt").exists()
    assert main(common + ["--steps", "4", "--resume"]) == 0
    assert "resumed at step 2" in capsys.readouterr().out
    meta = json.loads((tmp_path / "run" / "best.json").read_text())
    assert meta["task"] == "semantic" and meta["validation_images"]


def test_demo_writes_labels_table_and_overlay(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    table = pd.read_csv(tmp_path / "cells.csv")
    assert len(table) == summary["cells_found"] > 0
    assert (tmp_path / "overlay.png").stat().st_size > 0
    cells = tifffile.imread(tmp_path / "cells.tif")
    assert cells.shape == tifffile.imread(tmp_path / "smear.tif").shape[:2]
    assert summary["semantic_vs_truth"]["mIoU"] > 0.6
    graded = pd.read_csv(tmp_path / "rgb_field" / "cells.csv")  # the color field went through analyze_field
    assert len(graded) == summary["rgb_field"]["cells"] > 0 and "bethesda_class" in graded
    assert sum(summary["rgb_field"]["counts"].values()) == graded["bethesda_class"].notna().sum()


@pytest.mark.parametrize("backend", ["torch", "mmdet"])
def test_instance_commands_run_the_backend_asked_for(backend, tmp_path, capsys):
    from napari_cervix.instances.model import InstancesUnavailable, require_backend

    try:
        require_backend(backend)
    except InstancesUnavailable as err:
        pytest.skip(f"the {backend} backend cannot run here: {err}")
    sample = generate_smear((256, 256), n_cells=4, seed=4)
    sample.name = "field"
    tifffile.imwrite(tmp_path / "field.tif", sample.image)
    capsys.readouterr()
    assert (
        main(["segment", "instances", str(tmp_path / "field.tif"), "--out", str(tmp_path), "--backend", backend]) == 0
    )
    assert f"on the {backend} backend" in capsys.readouterr().out
    labels = tifffile.imread(tmp_path / "field_cell_labels.tif")
    assert labels.shape == (256, 256) and labels.max() >= 1
    coco = write_coco([sample], tmp_path / "gt" / "coco.json")
    evaluate = ["evaluate", "instances", "--dataset", f"coco:{coco}", "--split", "all", "--json"]
    assert main(evaluate + ["--backend", backend]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == backend and report["n_images"] == 1


def test_segment_instances_completes_color_fields_unless_told_not_to(tmp_path, capsys):
    sample = generate_smear((256, 256), n_cells=4, seed=4, rgb=True)
    tifffile.imwrite(tmp_path / "field.tif", sample.image)
    runs = {}
    for choice in ("auto", "off"):
        capsys.readouterr()
        out = tmp_path / choice
        assert (
            main(["segment", "instances", str(tmp_path / "field.tif"), "--out", str(out), "--complete-nuclei", choice])
            == 0
        )
        runs[choice] = (capsys.readouterr().out, tifffile.imread(out / "field_nuclei.tif"))
    assert "added by the semantic model" in runs["auto"][0] and "added" not in runs["off"][0]
    assert np.count_nonzero(runs["auto"][1]) >= np.count_nonzero(runs["off"][1])
    assert "redrawn on the semantic model's nucleus probability" in runs["off"][0]  # refined by default
    out = tmp_path / "as-detected"
    command = ["segment", "instances", str(tmp_path / "field.tif"), "--out", str(out), "--complete-nuclei", "off"]
    assert "edge redrawn on the semantic model's foreground" in runs["off"][0]
    assert main([*command, "--no-refine-nuclei", "--no-refine-cells"]) == 0
    assert "redrawn" not in capsys.readouterr().out
    assert not np.array_equal(tifffile.imread(out / "field_nuclei.tif"), runs["off"][1])
    as_detected, refined = (tifffile.imread(folder / "field_cells.tif") for folder in (out, tmp_path / "off"))
    assert as_detected.shape == refined.shape and not np.array_equal(as_detected, refined)


@pytest.mark.parametrize(
    "command", [["segment", "instances", "a.tif", "--out", "o"], ["evaluate", "instances", "--dataset", "coco:x.json"]]
)
def test_an_unknown_instance_backend_is_refused_by_the_parser(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--backend", "tensorrt"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err
