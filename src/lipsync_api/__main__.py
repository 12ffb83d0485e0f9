"""``python -m lipsync_api``: the CLI."""

from lipsync_api.cli.main import main

main()
