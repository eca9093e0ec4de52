"""Trace formats by name, as ``--trace-format`` resolves them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harmonia.model import InputError
from harmonia.traces import (
    FORMATS,
    generate,
    read_alibaba2018,
    read_azure2019,
    read_borg2011,
    read_borg2019,
    reader_for,
)


def test_every_format_name_has_its_reader() -> None:
    assert FORMATS == ("borg2011", "borg2019", "alibaba2018", "azure2019")
    assert reader_for("borg2011") is read_borg2011
    assert reader_for("borg2019") is read_borg2019
    assert reader_for("alibaba2018") is read_alibaba2018
    assert reader_for("azure2019") is read_azure2019


def test_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(InputError) as caught:
        reader_for("borg2015")
    (error,) = caught.value.errors
    assert error.path == "trace_format"
    assert error.message == (
        "unknown trace format 'borg2015'; known: borg2011, borg2019, alibaba2018, azure2019"
    )


@pytest.mark.parametrize("name", FORMATS)
def test_every_reader_takes_the_common_keywords(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    trace = generate(name, out, tasks=50)  # a path without suffix: a folder for any format
    path = trace.paths[0] if name.startswith("borg") else out
    events = list(reader_for(name)(path, skip_bad_lines=True, stats=None))
    assert len(events) == trace.events
