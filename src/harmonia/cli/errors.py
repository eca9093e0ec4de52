"""How every ``harmonia`` command reports Harmonia's errors: a printed list, exit 2."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from harmonia.cli.render import errors_text
from harmonia.model import HarmoniaError, InputError

EXIT_INPUT = 2

stderr = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn Harmonia's errors into a printed list and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            stderr.print(errors_text(exc))
            raise typer.Exit(EXIT_INPUT) from None
        except HarmoniaError as exc:
            stderr.print(Text.assemble(("error: ", "bold red"), str(exc)))
            raise typer.Exit(EXIT_INPUT) from None

    return wrapper  # type: ignore[return-value]
