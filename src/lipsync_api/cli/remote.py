"""What every command that talks to a server shares: ``--server``/``--api-key`` and how errors are shown.

A server's error prints as ``error [errorCode] (status): message`` (each message of a list on its own
line); an unreachable server as one line naming its URL. Both exit with status 1; Ctrl-C while watching
exits with 130 after saying how to resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.markup import escape

from lipsync_api.cli.console import clear_errors, console
from lipsync_api.client import ApiClient, ApiError, ServerUnreachable

SERVER_ENV = "LIPSYNC_SERVER"
API_KEY_ENV = "SYNC_API_KEY"
INTERRUPTED_EXIT = 130

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar=SERVER_ENV,
        help="Base URL of the server, e.g. http://127.0.0.1:8000.",
        show_default=False,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar=API_KEY_ENV, help="API key (x-api-key).", show_default=False),
]


def print_error(error: ApiError | ServerUnreachable) -> None:
    """One error as the CLI shows it."""
    if isinstance(error, ServerUnreachable):
        console.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False)
        return
    code = f" [{error.error_code}]" if error.error_code else ""
    head = f"[bold red]error{escape(code)} ({error.status_code}):[/]"
    if len(error.messages) == 1:
        console.print(f"{head} {escape(error.messages[0])}", highlight=False)
        return
    console.print(head, highlight=False)
    for message in error.messages:
        console.print(f"  {escape(message)}", highlight=False)


@contextmanager
def remote_errors() -> Iterator[None]:
    """The server's errors and an unreachable server as one clear message and exit status 1."""
    with clear_errors():
        try:
            yield
        except (ApiError, ServerUnreachable) as error:
            print_error(error)
            raise typer.Exit(1) from None


def connect(server: str | None, api_key: str | None) -> ApiClient:
    """A client of ``server``; a missing URL or key exits with status 2, naming it."""
    if not server:
        console.print(
            f"[bold red]error:[/] no server: give --server URL or set {SERVER_ENV}", highlight=False
        )
        raise typer.Exit(2)
    if not server.startswith(("http://", "https://")):
        console.print(
            f"[bold red]error:[/] --server must be an http(s) URL, got {escape(server)}", highlight=False
        )
        raise typer.Exit(2)
    if not api_key:
        console.print(f"[bold red]error:[/] no API key: give --api-key or set {API_KEY_ENV}", highlight=False)
        raise typer.Exit(2)
    return ApiClient(server, api_key)
