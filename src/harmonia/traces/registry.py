"""The trace formats Harmonia reads, by name: what ``--trace-format`` and a scenario's
``trace.format`` resolve through.

The simulator and the CLI call :func:`reader_for`; every reader has the signature of
:class:`TraceReader`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

from harmonia.model.errors import FieldError, InputError
from harmonia.traces.alibaba import read_alibaba2018
from harmonia.traces.azure import read_azure2019
from harmonia.traces.borg import read_borg2011, read_borg2019
from harmonia.traces.events import TaskEvent
from harmonia.traces.mapping import DEFAULT_MAPPING, ResourceMapping
from harmonia.traces.source import ReadStats


class TraceReader(Protocol):
    """Streams a trace file (or folder) as time-ordered :class:`TaskEvent`."""

    def __call__(
        self,
        path: str | os.PathLike[str],
        /,
        *,
        skip_bad_lines: bool = False,
        stats: ReadStats | None = None,
        mapping: ResourceMapping = DEFAULT_MAPPING,
    ) -> Iterator[TaskEvent]: ...


READERS: dict[str, TraceReader] = {
    "borg2011": read_borg2011,
    "borg2019": read_borg2019,
    "alibaba2018": read_alibaba2018,
    "azure2019": read_azure2019,
}
FORMATS: tuple[str, ...] = tuple(READERS)


def reader_for(name: str) -> TraceReader:
    """The reader registered as ``name``; an :class:`InputError` naming the known ones."""
    try:
        return READERS[name]
    except KeyError:
        known = ", ".join(FORMATS)
        raise InputError(
            [FieldError("trace_format", f"unknown trace format {name!r}; known: {known}")]
        ) from None
