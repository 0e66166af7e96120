"""``python -m detect.cli``: the harborwatch command line."""

from detect.cli import main

main()
