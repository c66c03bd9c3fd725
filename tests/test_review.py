"""Review core (Qt-free): gallery order, lazy thumbnails, decisions that survive a kill, summary, HTML report."""

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from napari_cervix.report import review_report
from napari_cervix.review import (
    DecisionLog,
    ReviewError,
    gallery_order,
    most_severe,
    page,
    sidecar_path,
    summarize,
    thumbnail,
    thumbnails,
    triage,
    with_decisions,
)


def cell_table(n: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "label": np.arange(1, n + 1),
            "centroid_y": rng.uniform(20, 180, n),
            "centroid_x": rng.uniform(20, 280, n),
            "predicted_class": pd.Categorical(rng.choice(["NILM", "LSIL", "HSIL"], n)),
            "p_abnormal": rng.uniform(0, 1, n),
            "reviewable": rng.uniform(0, 1, n) > 0.5,
        }
    )


def test_gallery_is_most_suspicious_first_ties_by_id_unscored_last_and_filters_by_class():
    table = pd.DataFrame(
        {
            "label": [5, 2, 9, 4],
            "predicted_class": ["HSIL", "NILM", "HSIL", "LSIL"],
            "p_abnormal": [0.9, np.nan, 0.9, 0.95],
        }
    )
    assert list(gallery_order(table)) == [3, 0, 2, 1]  # 0.95, then the 0.9 tie by label 5 < 9, NaN last
    assert list(gallery_order(table, classes="HSIL")) == [0, 2]
    assert list(gallery_order(table, classes=["NILM", "LSIL"])) == [3, 1]
    assert list(page(np.arange(250), 2, 100)) == list(range(200, 250))
    assert len(page(np.arange(250), 3, 100)) == 0
    with pytest.raises(ReviewError, match="abnormal probability"):
        gallery_order(table.drop(columns="p_abnormal"))


class Recording:
    """An array-like that records which regions were read."""

    def __init__(self, array):
        self.array, self.shape, self.reads = array, array.shape, []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.array[key]


def test_thumbnail_reads_only_its_crop_centres_the_cell_and_pads_outside_black():
    image = np.zeros((300, 400), np.uint16)
    image[150, 200] = 1000
    lazy = Recording(image)
    crop = thumbnail(lazy, 150, 200, size=32)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    assert np.unravel_index(crop[..., 0].argmax(), (32, 32)) == (16, 16)
    assert lazy.reads == [(slice(134, 166), slice(184, 216))]
    corner = thumbnail(np.full((50, 50, 3), 200, np.uint8), 0, 0, size=20)
    assert (corner[:10, :10] == 0).all() and (corner[10:, 10:] == 200).all()


def test_thumbnails_follow_the_table_rows():
    table = cell_table()
    image = np.zeros((200, 300, 3), np.uint8)
    for y, x in zip(table.centroid_y, table.centroid_x):
        image[int(round(y)), int(round(x))] = 255
    crops = thumbnails(image, table, [4, 1], size=16)
    assert crops.shape == (2, 16, 16, 3) and (crops[:, 8, 8] == 255).all()


def test_decisions_persist_latest_wins_and_model_columns_stay(tmp_path):
    table = cell_table()
    table.to_csv(tmp_path / "cells.csv", index=False)
    log = DecisionLog(sidecar_path(tmp_path / "cells.csv"))
    assert log.path == tmp_path / "cells.csv.review.jsonl" and sidecar_path(tmp_path) == tmp_path / "review.jsonl"
    log.record(3, "accept", "HSIL")
    log.record(5, "reject")
    log.record(3, "accept", "ASC-H", when=datetime(2026, 12, 1, tzinfo=UTC))
    reopened = DecisionLog(log.path).load()
    assert set(reopened) == {3, 5} and reopened[3].reviewed_class == "ASC-H"
    reviewed = with_decisions(table, reopened)
    pd.testing.assert_frame_equal(reviewed[table.columns], table)
    row = reviewed.set_index("label").loc[3]
    assert (row.review_decision, row.reviewed_class, row.reviewed_at) == (
        "accept",
        "ASC-H",
        "2026-12-01T00:00:00+00:00",
    )
    assert reviewed.set_index("label").loc[1, "review_decision"] is None
    with pytest.raises(ReviewError, match="decision must be one of"):
        log.record(1, "maybe")


def test_a_killed_writer_leaves_the_sidecar_readable(tmp_path):
    path = tmp_path / "cells.csv.review.jsonl"
    writer = (
        "import sys; from napari_cervix.review import DecisionLog\n"
        "log = DecisionLog(sys.argv[1])\n"
        "for i in range(10**9): log.record(i % 500 + 1, 'accept' if i % 2 else 'reject', 'HSIL')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", writer, str(path)])
    deadline = time.monotonic() + 60
    while (not path.exists() or path.stat().st_size < 20_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with open(path, "ab") as fh:  # and a line cut in the middle, as a kill during write() would leave
        fh.write(b'{"cell": 7, "decision": "acc')
    lines = path.read_text().splitlines()
    loaded = DecisionLog(path).load()
    assert len(lines) > 100 and len(loaded) == min(500, len(lines) - 1)
    assert all(d.decision in ("accept", "reject") for d in loaded.values())


def test_summary_counts_most_severe_and_adequacy():
    table = cell_table(8)
    decisions = {1: "accept", 2: "reject"}
    log_table = table.assign(
        review_decision=[decisions.get(i) for i in table.label],
        reviewed_class=["SCC" if i == 1 else None for i in table.label],
    )
    summary = summarize(log_table, preparation="liquid-based")
    assert summary["cells"] == 8 and sum(summary["per_predicted_class"].values()) == 8
    assert summary["per_reviewed_class"] == {"SCC": 1}
    assert summary["most_severe_confirmed"] == "SCC" and summary["reviewed"] == 2 and summary["rejected"] == 1
    assert summary["adequacy_estimate"]["minimum"] == 5000 and not summary["adequacy_estimate"]["adequate"]
    assert most_severe(["NILM", "ASC-US", "LSIL"]) == "LSIL" and most_severe(["NILM"]) is None
    assert summary["triage_confirmed"] == "high-grade suspicious"
    assert triage(["NILM", "LSIL"]) == "abnormal suspicious" and triage(["NILM", "normal_columnar"]) == "negative"
    assert triage(["benign", "H-SIL"]) == "high-grade suspicious" and triage([]) == "negative"
    with pytest.raises(ReviewError, match="preparation"):
        summarize(table, preparation="smear")


class Collector(HTMLParser):
    VOID = {"meta", "img", "br"}

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.balanced = [], [], True

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.balanced = False


def test_report_is_valid_self_contained_html_with_each_reviewed_cell(tmp_path):
    table = cell_table(10)
    image = np.random.default_rng(1).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    log = DecisionLog(tmp_path / "decisions.jsonl")
    for cell in (2, 7, 9):
        log.record(cell, "accept", "HSIL")
    reviewed = with_decisions(table, log.load())
    html_path, csv_path = review_report(
        reviewed, image, tmp_path / "report.html", image_name="field <1>", models={"classifier": "test-model"}
    )
    text = html_path.read_text()
    parser = Collector()
    parser.feed(text)
    assert text.startswith("<!DOCTYPE html>") and parser.balanced and not parser.stack
    assert sorted(img["alt"] for img in parser.images) == ["cell 2", "cell 7", "cell 9"]
    assert all(img["src"].startswith("data:image/png;base64,") for img in parser.images)
    assert "field &lt;1&gt;" in text and "test-model" in text
    saved = pd.read_csv(csv_path)
    assert saved.set_index("label").loc[7, "review_decision"] == "accept"


def test_cli_report_reads_the_table_and_its_decisions(tmp_path, capsys):
    import tifffile

    from napari_cervix.cli import main

    table = cell_table(5)
    table.to_csv(tmp_path / "cells.csv", index=False)
    tifffile.imwrite(tmp_path / "field.tif", np.zeros((200, 300, 3), np.uint8))
    DecisionLog(sidecar_path(tmp_path / "cells.csv")).record(4, "reject")
    out = tmp_path / "out" / "report.html"
    assert main(["report", str(tmp_path / "cells.csv"), "--image", str(tmp_path / "field.tif"), "--out", str(out)]) == 0
    parser = Collector()
    parser.feed(out.read_text())
    assert [img["alt"] for img in parser.images] == ["cell 4"]
    assert "1 decisions" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing.csv"), "--image", "x.tif", "--out", str(out)]) == 2
