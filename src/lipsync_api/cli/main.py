"""The ``lipsync-api`` command."""

from __future__ import annotations

import typer

from lipsync_api.cli.batch import batch_app
from lipsync_api.cli.evaluate import eval_command
from lipsync_api.cli.generate import generate_command
from lipsync_api.cli.keys import keys_app
from lipsync_api.cli.orgs import orgs_app
from lipsync_api.cli.serve import serve_command

app = typer.Typer(
    name="lipsync-api",
    help="Self-hosted lipsync generation: make a video's mouth speak a new speech track.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("generate")(generate_command)
app.command("eval")(eval_command)
app.command("serve")(serve_command)
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(batch_app, name="batch")


def main() -> None:
    """Console-script entry point."""
    app()
