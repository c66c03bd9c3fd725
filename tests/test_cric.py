"""CRIC-style point-annotated RGB fields (generated here, never the real data) and the RGB training path."""

import csv

import numpy as np
import pytest
from test_pseudo_labels import stained_field  # tests/ is on sys.path (rootdir-less test modules)

from napari_cervix.io import load_dataset, parse_spec, split_samples, write_coco
from napari_cervix.io.cric import read_cric
from napari_cervix.io.sample import CellSample
from napari_cervix.semantic.losses import IGNORE, NOT_NUCLEUS, NUCLEUS

FIELDS = {
    "fieldA": [(40, 50, 10, 0.09, "Negative for intraepithelial lesion"), (90, 140, 22, 0.05, "HSIL")],
    "fieldB": [(60, 60, 14, 0.08, "LSIL")],
    "fieldC": [],  # a field without annotated cells
}


def write_cric(folder, fields=FIELDS, shape=(128, 192)):
    import imageio.v3 as iio

    (folder / "images").mkdir(parents=True)
    rows = []
    for k, (name, cells) in enumerate(fields.items()):
        image, _ = stained_field(shape, [c[:4] for c in cells], seed=k)
        iio.imwrite(folder / "images" / f"{name}.png", image)  # lossless: the test compares pixels
        rows += [
            {"image": f"{name}.png", "cell_id": f"{k}{i}", "bethesda": c[4], "x": c[1] + 0.4, "y": c[0] - 0.3}
            for i, c in enumerate(cells)
        ]
    with open(folder / "cells.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["image", "cell_id", "bethesda", "x", "y"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


def write_edf(folder, shape=(96, 96)):
    """An EDF-style gray frame with a filled nucleus GT (``NAME.png`` + ``NAME_GT.png``)."""
    import imageio.v3 as iio

    folder.mkdir(parents=True)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    nucleus = (yy - 48) ** 2 + (xx - 48) ** 2 <= 100
    iio.imwrite(folder / "EDF900.png", np.where(nucleus, 70, 190).astype(np.uint8))
    iio.imwrite(folder / "EDF900_GT.png", (nucleus * 255).astype(np.uint8))
    return folder


def test_cric_fields_read_as_points_classes_and_pseudo_labels(tmp_path):
    folder = write_cric(tmp_path / "cric")
    assert parse_spec(str(folder))[0] == "cric"  # a plain path is recognised, not taken for class folders
    samples = {s.name: s for s in load_dataset(f"cric:{folder}")}
    assert sorted(samples) == ["fieldA", "fieldB", "fieldC"]
    a = samples["fieldA"]
    assert a.image.shape == (128, 192, 3) and a.partial_annotation
    np.testing.assert_allclose(a.meta["points"], [[39.7, 50.4], [89.7, 140.4]], atol=1e-4)  # (row, col)
    assert a.meta["bethesda"] == ["Negative for intraepithelial lesion", "HSIL"]
    target = a.meta["semantic_target"]
    assert set(np.unique(target)) <= {NUCLEUS, NOT_NUCLEUS, IGNORE}
    np.testing.assert_array_equal(target == NUCLEUS, a.nuclei)
    for row, col in a.meta["points"].round().astype(int):
        assert a.nuclei[row, col]
    assert len(samples["fieldC"].meta["points"]) == 0 and not samples["fieldC"].nuclei.any()
    points_only = read_cric(folder, pseudo_masks=False)[0]
    assert points_only.nuclei is None and "semantic_target" not in points_only.meta


def test_cric_errors_name_the_file(tmp_path):
    folder = write_cric(tmp_path / "cric")
    table = (folder / "cells.csv").read_text()
    (folder / "cells.csv").write_text(table.replace("bethesda", "grade"))
    with pytest.raises(ValueError, match=r"cells.csv: missing column\(s\) bethesda"):
        read_cric(folder)
    (folder / "cells.csv").write_text(table + "gone.png,9,HSIL,5,5\n")
    with pytest.raises(FileNotFoundError, match="gone.png"):
        read_cric(folder)
    (folder / "cells.csv").write_text(table + "fieldB.png,9,HSIL,500,5\n")
    with pytest.raises(ValueError, match="outside"):
        read_cric(folder)


def test_partial_annotation_is_set_by_each_reader(tmp_path):
    edf = load_dataset(f"edf-nuclei:{write_edf(tmp_path / 'edf')}")
    assert all(s.partial_annotation for s in edf)
    # COCO: complete when every nucleus lies in an annotated cell, partial when one lies outside all cells.
    yy, xx = np.mgrid[:64, :64]
    cell = (yy - 20) ** 2 + (xx - 20) ** 2 <= 150
    inside = (yy - 20) ** 2 + (xx - 20) ** 2 <= 16
    outside = (yy - 50) ** 2 + (xx - 50) ** 2 <= 16
    image = np.full((64, 64), 180, np.uint8)
    complete = CellSample(image=image, cells=cell[None], nuclei=inside, name="complete")
    partial = CellSample(image=image, cells=cell[None], nuclei=inside | outside, name="partial")
    read = {s.name: s for s in load_dataset(f"coco:{write_coco([complete, partial], tmp_path / 'c' / 'coco.json')}")}
    assert not read["complete"].partial_annotation and read["partial"].partial_annotation


def test_rgb_training_set_replicates_gray_frames_and_splits_by_field(tmp_path):
    from napari_cervix.semantic.data import CropDataset, build_training_set, normalize_image

    cric, edf = write_cric(tmp_path / "cric"), write_edf(tmp_path / "edf")
    data = build_training_set([f"cric:{cric}", f"edf-nuclei:{edf}"], val_fraction=0.3, seed=0)
    assert data["in_channels"] == 3
    by_name = {e["name"]: e for e in data["entries"]}
    assert not by_name["EDF900"]["complete"] and by_name["fieldA"]["dataset"] == "cric"
    # One side per field, decided by its name alone.
    val_names = {s.name for s in split_samples(read_cric(cric, pseudo_masks=False), 0.3, 0)[1]}
    assert {n for n, e in by_name.items() if e["split"] == "val" and e["dataset"] == "cric"} == val_names
    gray = normalize_image(by_name["EDF900"]["image"], 3)
    assert gray.shape == (96, 96, 3)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    np.testing.assert_allclose(gray[..., 0], normalize_image(by_name["EDF900"]["image"], 1)[..., 0], atol=1e-6)
    rgb = normalize_image(by_name["fieldA"]["image"], 3)
    assert rgb.min() >= 0 and np.percentile(rgb, 99.9) <= 1.5
    pairs = [(gray, by_name["EDF900"]["target"]), (rgb, by_name["fieldA"]["target"])]
    dataset = CropDataset(pairs, crop=64, length=6, seed=1)
    assert dataset.colored == [False, True]
    for index in range(6):
        image, target = dataset[index]
        assert image.shape == (3, 64, 64) and image.dtype == np.float32 and target.shape == (64, 64)
        assert set(np.unique(target)) <= {0, 1, 2, NOT_NUCLEUS, IGNORE}
    again, _ = dataset[3]
    np.testing.assert_array_equal(again, dataset[3][0])  # seeded per crop


def test_stain_jitter_changes_hematoxylin_and_identity_keeps_the_image():
    from napari_cervix.pseudo_labels import hematoxylin
    from napari_cervix.semantic.data import jitter_stains

    image, truth = stained_field((64, 64), [(32, 32, 12, 0.08)])
    unit = image.astype(np.float32) / 255
    np.testing.assert_allclose(jitter_stains(unit, [1, 1, 1], [0, 0, 0]), unit, atol=2e-3)
    darker = jitter_stains(unit, [1.5, 1, 1], [0, 0, 0])
    stain_before, stain_after = hematoxylin(image), hematoxylin((np.clip(darker, 0, 1) * 255).astype(np.uint8))
    assert stain_after[truth > 0].mean() > 1.3 * stain_before[truth > 0].mean()


def test_warm_start_inflates_a_gray_first_convolution_to_rgb():
    import torch

    from napari_cervix.semantic.models import build_model
    from napari_cervix.semantic.train import inflate_input_channels

    torch.manual_seed(0)
    options = {"encoder_depth": 4, "decoder_channels": [32, 16, 8, 8]}
    gray = build_model("unet-mobilenet_v2", 1, 3, **options).eval()
    rgb = build_model("unet-mobilenet_v2", 3, 3, **options).eval()
    rgb.load_state_dict(inflate_input_channels(gray.state_dict(), rgb.state_dict()))
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rgb(x.repeat(1, 3, 1, 1)), gray(x), atol=1e-5, rtol=1e-4)


def test_fields_are_split_whole_and_every_stratum_is_validated():
    from napari_cervix.semantic.data import split_training_samples

    rgb, gray = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)
    fields = [
        CellSample(image=rgb, name=f"{stratum}-{k}", meta={"stratum": stratum}, partial_annotation=True)
        for stratum, count in (("NILM", 40), ("HSIL", 5), ("SCC", 10))
        for k in range(count)
    ]
    frames = [CellSample(image=gray, name=f"EDF{k}", partial_annotation=True) for k in range(10)]
    train, val = split_training_samples([(s, False) for s in fields + frames], 0.2, 0)
    assert {s.name for s in train}.isdisjoint({s.name for s in val})
    assert len(train) + len(val) == 65
    val_names = {s.name for s in val}
    for stratum, count in (("NILM", 40), ("HSIL", 5), ("SCC", 10)):
        assert sum(n.startswith(stratum) for n in val_names) >= round(0.2 * count)
    # Gray frames keep the plain name-hash split they had before RGB fields joined.
    assert {s.name for s in split_samples(frames, 0.2, 0)[1]} == {n for n in val_names if n.startswith("EDF")}


def test_focus_crops_are_cut_around_annotated_abnormal_cells(tmp_path):
    from napari_cervix.semantic.data import CropDataset, build_training_set, focus_points, pack_training_set

    samples = {s.name: s for s in read_cric(write_cric(tmp_path / "cric"), pseudo_masks=False)}
    hsil = focus_points(samples["fieldA"])  # the NILM point is not a focus, the HSIL one is (rank 4)
    np.testing.assert_allclose(hsil, [[89.7, 140.4, 4]], atol=1e-4)
    assert focus_points(samples["fieldC"]).shape == (0, 3)
    # The focus travels with a packed training set.
    pack_training_set([f"cric:{tmp_path / 'cric'}"], tmp_path / "pack.npz")
    packed = {e["name"]: e["focus"] for e in build_training_set([f"pack:{tmp_path / 'pack.npz'}"], 0.2, 0)["entries"]}
    np.testing.assert_allclose(packed["fieldB"], focus_points(samples["fieldB"]))

    # One small marked nucleus in a large image: focus crops hold it, area-weighted crops seldom do.
    image = np.random.default_rng(0).random((600, 800, 3)).astype(np.float32)
    target = np.zeros((600, 800), np.uint8)
    target[300:310, 400:410] = NUCLEUS
    pairs = [(image, target), (image, np.zeros_like(target))]
    focus = [np.array([[305, 405, 5]], np.float32), None]
    held = {}
    for share in (0.0, 1.0):
        dataset = CropDataset(pairs, crop=128, length=40, focus=focus, focus_share=share, seed=2)
        held[share] = np.mean([(dataset[i][1] == NUCLEUS).any() for i in range(40)])
    assert held[1.0] >= 0.8 and held[0.0] <= 0.2, held
