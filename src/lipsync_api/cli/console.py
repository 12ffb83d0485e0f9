"""Shared terminal output: one console, errors printed as one clear line and a non-zero exit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from lipsync_api.errors import LipsyncError

console = Console(stderr=True, soft_wrap=True)  # progress and messages; long paths stay unbroken
results = Console(soft_wrap=True)  # what a command reports, on standard output


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the service's own errors into ``error [code]: message`` and exit status 1, no traceback."""
    try:
        yield
    except LipsyncError as error:
        code = f" [{error.error_code}]" if error.error_code else ""
        console.print(f"[bold red]error{escape(code)}:[/] {escape(error.message)}", highlight=False)
        raise typer.Exit(1) from None
    except ValueError as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        raise typer.Exit(2) from None
