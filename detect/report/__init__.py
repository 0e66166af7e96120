"""A run's report folder: tables (``tables``), charts and the map (``charts``), every counted detection as a
crop (``crops``), the interactive map page (``map``), what produced it (``provenance``: model, versions,
run.json), the report's content (``blocks``) and its Markdown/HTML rendering (``render``)."""

from detect.report.blocks import CAVEATS, card_section, copernicus_notice, report_blocks
from detect.report.charts import plot_baseline, plot_claims, plot_counts, plot_map, stretch_rgb
from detect.report.crops import (
    counted_detections,
    low_score_cutoffs,
    to_rgb8,
    with_ids,
    write_crops,
    write_crops_index,
)
from detect.report.map import map_days, write_map_html, write_overlay
from detect.report.provenance import ModelInfo, model_info, package_versions, write_run_json
from detect.report.render import render_html, render_markdown, write_report
from detect.report.tables import write_detections, write_geoparquet, write_table

__all__ = [
    "CAVEATS",
    "ModelInfo",
    "card_section",
    "copernicus_notice",
    "counted_detections",
    "low_score_cutoffs",
    "map_days",
    "model_info",
    "package_versions",
    "plot_baseline",
    "plot_claims",
    "plot_counts",
    "plot_map",
    "render_html",
    "render_markdown",
    "report_blocks",
    "stretch_rgb",
    "to_rgb8",
    "with_ids",
    "write_crops",
    "write_crops_index",
    "write_detections",
    "write_geoparquet",
    "write_map_html",
    "write_overlay",
    "write_report",
    "write_run_json",
    "write_table",
]
