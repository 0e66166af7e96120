"""CLI commands, one module per area; importing this package registers them on ``detect.cli.app.cli``."""

from detect.cli.commands import aoi_cmd, batch_cmd, detect_cmd, fetch_cmd, run_cmd, search_cmd, train_cmd  # noqa: F401
