"""A self-contained HTML review report (thumbnails embedded) and its CSV, written atomically.

:func:`review_report` is the console form (``nc.review_report``); the *Review cells* widget and
``napari-cervix report`` call it too.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .cli import Command
from .io._atomic import atomic_path
from .review import REVIEW_COLUMNS, class_column, gallery_order, id_column, score_column, summarize, thumbnails

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
.cells{display:flex;flex-wrap:wrap;gap:12px}.cell{border:1px solid #ccc;padding:6px;font-size:12px;width:140px}
.accept{border-color:#c0392b}.reject{border-color:#7f8c8d;opacity:.8}img{width:128px;height:128px}
"""


def _png_data_uri(pixels: np.ndarray) -> str:
    import imageio.v3 as iio

    buffer = io.BytesIO()
    iio.imwrite(buffer, pixels, extension=".png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _rows(mapping: dict) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in mapping.items())


def review_report(
    table: pd.DataFrame,
    image,
    out,
    *,
    image_name: str = "",
    models: dict | None = None,
    preparation: str = "conventional",
    include: str = "reviewed",
    thumbnail_size: int = 128,
) -> tuple[Path, Path]:
    """Write ``out`` (HTML) and ``out`` with ``.csv`` (the table with the review columns); returns both paths.

    ``table``: per-cell table with the review columns (:func:`napari_cervix.review.with_decisions`).
    ``include``: "reviewed" (every cell with a decision) or "reviewable" (also the flagged, undecided ones).
    ``models``: name → version/sha of the models that made the table, listed in the report.
    """
    if include not in ("reviewed", "reviewable"):
        raise ValueError(f"include must be 'reviewed' or 'reviewable', got {include!r}")
    out = Path(out)
    for column in REVIEW_COLUMNS:
        if column not in table.columns:
            table = table.assign(**{column: None})
    summary = summarize(table, preparation=preparation)
    order = gallery_order(table)
    chosen = table["review_decision"].notna().to_numpy()
    if include == "reviewable" and "reviewable" in table.columns:
        chosen |= table["reviewable"].astype(bool).to_numpy()
    rows = order[chosen[order]]
    crops = thumbnails(image, table, rows, thumbnail_size)
    ids, classes, scores = id_column(table), class_column(table), score_column(table)
    cards = []
    for crop, row in zip(crops, rows):
        record = table.iloc[int(row)]
        decision = record["review_decision"] or "not reviewed"
        reviewed_class = record["reviewed_class"] if isinstance(record["reviewed_class"], str) else ""
        cards.append(
            f'<div class="cell {html.escape(str(decision))}"><img alt="cell {int(record[ids])}" '
            f'src="{_png_data_uri(crop)}"><br>cell {int(record[ids])}<br>{html.escape(str(record[classes]))} '
            f"({float(record[scores]):.2f})<br>{html.escape(str(decision))} {html.escape(reviewed_class)}</div>"
        )
    adequacy = summary.pop("adequacy_estimate")
    facts = {
        "image": image_name or "(unnamed)",
        "report written": datetime.now(UTC).isoformat(timespec="seconds"),
        "napari-cervix": __version__,
        **{f"model {k}": v for k, v in (models or {}).items()},
    }
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>Review of {html.escape(image_name or 'cells')}</title><style>{STYLE}</style></head><body>"
        f"<h1>Cell review: {html.escape(image_name or 'cells')}</h1><table>{_rows(facts)}</table>"
        f"<h2>Summary</h2><table>{_rows({k: v for k, v in summary.items() if not isinstance(v, dict)})}</table>"
        f"<h3>Per predicted class</h3><table>{_rows(summary['per_predicted_class'])}</table>"
        f"<h3>Per reviewed class</h3><table>{_rows(summary['per_reviewed_class'])}</table>"
        f"<h3>Adequacy (estimate)</h3><table>{_rows(adequacy)}</table>"
        f"<h2>Cells ({len(cards)})</h2><div class='cells'>{''.join(cards)}</div></body></html>\n"
    )
    csv = out.with_suffix(".csv")
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    return out, csv


# ------------------------------------------------------------------------------------------------ CLI
def _add_arguments(p) -> None:
    p.add_argument("results", help="per-cell table (.csv or .parquet, e.g. from 'napari-cervix classify')")
    p.add_argument("--image", required=True, help="the image or slide the table describes (thumbnails)")
    p.add_argument("--out", required=True, help="report file (.html); the CSV is written beside it")
    p.add_argument("--decisions", help="decisions file (default: RESULTS.review.jsonl beside the table)")
    p.add_argument("--include", choices=("reviewed", "reviewable"), default="reviewed")
    p.add_argument("--preparation", choices=("conventional", "liquid-based"), default="conventional")


def _run(args) -> int:
    import sys

    from .io import read_image
    from .io.slides import open_slide, slide_format
    from .review import DecisionLog, sidecar_path, with_decisions

    results = Path(args.results)
    if not results.exists():
        print(f"error: {results} does not exist", file=sys.stderr)
        return 2
    table = pd.read_parquet(results) if results.suffix == ".parquet" else pd.read_csv(results)
    decisions = DecisionLog(args.decisions or sidecar_path(results)).load()
    image = open_slide(args.image).levels[0] if slide_format(args.image) == "ome-zarr" else read_image(args.image)
    html_path, csv_path = review_report(
        with_decisions(table, decisions),
        image,
        args.out,
        image_name=Path(args.image).name,
        preparation=args.preparation,
        include=args.include,
    )
    print(f"wrote {html_path} and {csv_path} ({len(decisions)} decisions)")
    return 0


COMMANDS = [Command("report", None, "HTML + CSV report of a reviewed cell table", _add_arguments, _run)]
