"""Shared helpers for the CLI tests: a runner over ``harmonia.cli.app.app`` in a scratch
directory, fixture paths, and output normalization.

Rich wraps and may colour what it prints; :func:`plain` strips ANSI escapes and collapses
whitespace so assertions do not depend on the terminal width. ``COLUMNS`` is set wide so
tables are not truncated either.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from harmonia.cli.app import app

FIXTURES = Path(__file__).parents[1] / "fixtures"

#: Every built-in policy, by name, in the order the CLI lists them.
POLICIES = (
    "binpack",
    "default",
    "interference",
    "latency",
    "latency-reliable",
    "ldp",
    "random",
    "ratio",
    "rom",
    "round-robin",
    "spread",
)
CLI_FIXTURES = FIXTURES / "cli"
OAKESTRA = FIXTURES / "sla" / "oakestra-clientsrvr.json"
EDGE_VIDEO = FIXTURES / "sla" / "edge-video.yaml"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without ANSI escapes, every run of whitespace made one space."""
    return " ".join(_ANSI.sub("", text).split())


@dataclass
class Run:
    """The outcome of one CLI invocation."""

    result: Result

    @property
    def code(self) -> int:
        return self.result.exit_code

    @property
    def stdout(self) -> str:
        return self.result.stdout

    @property
    def stderr(self) -> str:
        return self.result.stderr

    @property
    def out(self) -> str:
        """Standard output, normalized with :func:`plain`."""
        return plain(self.result.stdout)

    @property
    def err(self) -> str:
        """Standard error, normalized with :func:`plain`."""
        return plain(self.result.stderr)

    def assert_clean(self) -> None:
        """No exception escaped the command: only a normal return or ``typer.Exit``."""
        exc = self.result.exception
        assert exc is None or isinstance(exc, SystemExit), f"unexpected {type(exc).__name__}: {exc}"
        assert "Traceback" not in self.result.output


Invoke = Callable[..., Run]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run ``harmonia ARGS...`` in-process, with ``tmp_path`` as working directory."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env={"COLUMNS": "240"})

    def invoke(*args: object) -> Run:
        return Run(runner.invoke(app, [str(a) for a in args]))

    return invoke
