"""A run's report folder: tables (``tables``), charts and the map (``charts``), what produced it
(``provenance``: model, versions, run.json), the report's content (``blocks``) and its Markdown/HTML
rendering (``render``)."""

from detect.report.blocks import CAVEATS, card_section, report_blocks
from detect.report.charts import plot_counts, plot_map, stretch_rgb
from detect.report.provenance import ModelInfo, model_info, package_versions, write_run_json
from detect.report.render import render_html, render_markdown, write_report
from detect.report.tables import write_detections, write_geoparquet, write_table

__all__ = [
    "CAVEATS",
    "ModelInfo",
    "card_section",
    "model_info",
    "package_versions",
    "plot_counts",
    "plot_map",
    "render_html",
    "render_markdown",
    "report_blocks",
    "stretch_rgb",
    "write_detections",
    "write_geoparquet",
    "write_report",
    "write_run_json",
    "write_table",
]
