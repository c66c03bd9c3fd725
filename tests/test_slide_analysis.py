"""The slide pipeline: tissue tiles, cells owned once across tile borders, resume after a kill, refusal of a
foreign output folder, the same table on a 2-worker dask LocalCluster, multiscale OME-Zarr labels."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from napari_cervix.instances.model import InstancesUnavailable, require_backend
from napari_cervix.io.slides import write_ome_tiff
from napari_cervix.slide_analysis import SlideOutputError, SlideSettings, analyze_slide, tile_cores, tile_timings
from napari_cervix.synth import PIXEL_SIZE_UM, generate_smear
from napari_cervix.tiling import tile_grid

SETTINGS = SlideSettings(tile_size=1024, overlap=256)
FIELDS = [(256, 100), (256, 900)]  # the second straddles the border of the first two tiles; the third is glass
GLASS = (236, 232, 228)


def test_tile_cores_partition_the_image():
    shape = (1000, 1300)
    tiles = tile_grid(shape, 512, 128)
    owner = np.zeros(shape, int)
    for y0, y1, x0, x1 in tile_cores(tiles, shape):
        owner[y0:y1, x0:x1] += 1
    assert (owner == 1).all()
    for tile, (y0, y1, x0, x1) in zip(tiles, tile_cores(tiles, shape)):
        assert tile.y0 <= y0 < y1 <= tile.y1 and tile.x0 <= x0 < x1 <= tile.x1


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    slide = np.empty((1024, 2560, 3), np.uint8)
    slide[:] = GLASS
    for k, (y, x) in enumerate(FIELDS):
        slide[y : y + 512, x : x + 512] = generate_smear((512, 512), n_cells=6, seed=20 + k, rgb=True).image
    return write_ome_tiff(tmp_path_factory.mktemp("slide") / "smear.ome.tif", slide, pixel_size_um=PIXEL_SIZE_UM)


@pytest.fixture(scope="module")
def reference(slide_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    return analyze_slide(slide_path, out, SETTINGS)


def test_slide_run_outputs(reference):
    table, summary = reference.table, reference.summary
    assert len(table) >= 6 and list(table["label"]) == list(range(1, len(table) + 1))
    assert {"centroid_y", "centroid_x", "centroid_y_um", "bethesda_class", "reviewable", "tile"} <= set(table)
    assert 0 < summary["skipped_fraction"] < 1 and summary["cells"] == len(table)
    assert set(summary["seconds_by_step"]) == {"tissue", "tiles", "table", "labels"}
    assert json.loads((reference.out / "summary.json").read_text()) == summary
    pd.testing.assert_frame_equal(pd.read_parquet(reference.out / "cells.parquet"), table)
    # every cell centre lies on one of the two fields (or within the cytoplasm the color model sees along
    # a generated field's edge on glass), none on the glass beyond, and no cell was kept twice
    inside = np.zeros(len(table), bool)
    for y, x in FIELDS:
        inside |= table.centroid_y.between(y - 32, y + 544) & table.centroid_x.between(x - 32, x + 544)
    assert inside.all()
    assert set(table["tile"]) == {0, 1} and summary["tiles"] == 3 and summary["tiles_with_tissue"] == 2
    centres = table[["centroid_y", "centroid_x"]].to_numpy()
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(centres)) * 1e9
    assert distances.min() > 3


def test_instance_cells_on_a_slide(slide_path, tmp_path):
    try:
        require_backend("auto")  # the backend analyze_slide runs: torch + torchvision, no mmdet needed
    except InstancesUnavailable as err:
        pytest.skip(f"the instance model's default backend cannot run: {err}")
    settings = SlideSettings(tile_size=1024, overlap=256, cells="instances", grading_model=None)
    result = analyze_slide(slide_path, tmp_path / "instances", settings)
    table = result.table
    assert len(table) >= 6 and "bethesda_class" not in table and result.summary["cells"] == len(table)
    inside = np.zeros(len(table), bool)
    for y, x in FIELDS:
        inside |= table.centroid_y.between(y, y + 512) & table.centroid_x.between(x, x + 512)
    assert inside.all()


def test_labels_are_a_multiscale_ome_zarr_with_the_table_ids(reference):
    import zarr

    root = zarr.open_group(str(reference.out / "labels.ome.zarr"), mode="r")
    assert root.attrs["labels"] == ["cells", "nuclei"]
    cells = root["cells"]
    datasets = cells.attrs["multiscales"][0]["datasets"]
    assert len(datasets) >= 2 and cells["0"].shape == (1024, 2560)
    full = np.asarray(cells["0"])
    assert set(np.unique(full)) - {0} <= set(reference.table["label"])
    nuclei = np.asarray(root["nuclei/0"])
    assert nuclei.max() > 0 and set(np.unique(nuclei)) - {0} <= set(reference.table["label"])
    assert np.array_equal(np.asarray(cells["1"]), full[::2, ::2])


def test_a_different_run_in_the_same_folder_is_refused(slide_path, reference):
    with pytest.raises(SlideOutputError, match="another run"):
        analyze_slide(slide_path, reference.out, SlideSettings(tile_size=512, overlap=128))


def test_killed_run_resumes_to_the_same_table(slide_path, reference, tmp_path):
    out = tmp_path / "killed"
    code = (
        "import sys; from napari_cervix.slide_analysis import analyze_slide, SlideSettings\n"
        f"analyze_slide(sys.argv[1], sys.argv[2], SlideSettings(**{SETTINGS.__dict__!r}))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(slide_path), str(out)])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list((out / "tiles").glob("*.parquet"))) < 1:
        time.sleep(0.2)
        assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "cells.parquet").exists()
    resumed = analyze_slide(slide_path, out, SETTINGS)
    pd.testing.assert_frame_equal(resumed.table, reference.table)


def test_two_worker_local_cluster_gives_the_same_table(slide_path, reference, tmp_path):
    result = analyze_slide(slide_path, tmp_path / "cluster", SETTINGS, workers=2)
    pd.testing.assert_frame_equal(result.table, reference.table)
    # each tile records the worker process that ran it, not this one
    timings = tile_timings(result.out)
    assert sorted(timings.tile) == [0, 1] and not timings.worker.str.endswith(f":{os.getpid()}").any()


def test_each_tile_records_when_where_and_how_long_it_ran(reference):
    timings = tile_timings(reference.out)
    assert sorted(timings.tile) == sorted(set(reference.table.tile))
    assert (timings.worker == f"{socket.gethostname()}:{os.getpid()}").all()  # the run was in this process
    assert (timings.seconds > 0).all() and timings.started.is_monotonic_increasing
    assert timings.started.iloc[-1] >= timings.started.iloc[0] + timings.seconds.iloc[0]  # one after the other
    assert (timings.started + timings.seconds).max() <= time.time()


def _worker_environment() -> dict:
    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")}


def test_local_cluster_workers_keep_glibc_malloc_defaults_and_one_thread():
    from dask.distributed import Client

    from napari_cervix.slide_analysis import local_cluster

    with local_cluster(1) as cluster, Client(cluster) as client:
        environment = client.submit(_worker_environment).result()
    # dask's MALLOC_TRIM_THRESHOLD_ would make every large temporary array a fresh mmap (slow tiles)
    assert environment == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1"}


def test_cli_on_a_finished_run_resumes_and_prints_the_summary(slide_path, reference, capsys):
    import json

    from napari_cervix.cli import main

    args = ["analyze", str(slide_path), "--out", str(reference.out), "--tile-size", "1024", "--overlap", "256"]
    assert main([*args, "--csv"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["cells"] == len(reference.table)
    assert len(pd.read_csv(reference.out / "cells.csv")) == len(reference.table)
    assert main(["analyze", str(slide_path), "--out", str(reference.out), "--tile-size", "512"]) == 1


def test_results_layers_refuse_a_folder_that_is_not_a_finished_run(tmp_path):
    from napari_cervix.slide_analysis import results_layers

    with pytest.raises(SlideOutputError, match="not a finished slide-analysis folder"):
        results_layers(tmp_path)


def test_rgb_slide_cells_carry_bethesda_grades_and_the_grader_is_part_of_the_fingerprint(slide_path, reference):
    import json

    from napari_cervix.classes import BETHESDA_GRADES, NOT_SQUAMOUS

    table = pd.read_parquet(reference.out / "cells.parquet")
    assert {
        "bethesda_class",
        "p_abnormal",
        "squamous_score",
        "reviewable",
        *(f"p_{g}" for g in BETHESDA_GRADES),
    } <= set(table)
    assert set(table["bethesda_class"].dropna()) <= {*BETHESDA_GRADES, NOT_SQUAMOUS}
    graded = table["bethesda_class"].notna()
    assert graded.sum() >= 6 and table.loc[graded, "p_abnormal"].between(0, 1).all()
    # a cell without a nucleus (cytoplasm alone) is measured, never graded nor flagged
    assert table.loc[~graded, "p_abnormal"].isna().all() and not table.loc[~graded, "reviewable"].any()
    counts = reference.summary["per_bethesda_class"]
    assert sum(counts.values()) == table["bethesda_class"].notna().sum() and counts == {
        c: int((table["bethesda_class"] == c).sum()) for c in counts
    }
    saved = json.loads((reference.out / "run.json").read_text())["fingerprint"]["settings"]
    assert saved["grading_model"] == SETTINGS.grading_model
    ungraded = SlideSettings(**{**SETTINGS.__dict__, "grading_model": None})
    with pytest.raises(SlideOutputError, match="settings"):
        analyze_slide(slide_path, reference.out, ungraded)
