"""CLI commands, one module per area; importing this package registers them on ``detect.cli.cli``."""

from detect.commands import aoi_cmd, imagery_cmd  # noqa: F401
