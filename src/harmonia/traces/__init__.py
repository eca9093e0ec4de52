"""Workload traces: streaming readers of public cluster-trace formats and synthetic
generators that write them, all yielding :class:`~harmonia.traces.events.TaskEvent`.

Readers never hold a whole trace in memory; :func:`read_trace` runs a large one's reader
in a child process (:mod:`harmonia.traces.prefetch`). Imports only :mod:`harmonia.model`.
"""

from harmonia.traces.alibaba import read_alibaba2018, read_batch_task, read_container_meta
from harmonia.traces.arrivals import ARRIVAL_PROCESSES, arrival_times
from harmonia.traces.azure import read_azure2019
from harmonia.traces.borg import read_borg2011, read_borg2019
from harmonia.traces.events import EventKind, TaskEvent, TraceError
from harmonia.traces.mapping import DEFAULT_MAPPING, ResourceMapping
from harmonia.traces.prefetch import PREFETCH_MIN_BYTES, prefetched, read_trace
from harmonia.traces.registry import FORMATS, READERS, TraceReader, reader_for
from harmonia.traces.source import ReadStats, open_text
from harmonia.traces.synth_common import SyntheticTrace, Workload
from harmonia.traces.synthetic import generate

__all__ = [
    "ARRIVAL_PROCESSES",
    "DEFAULT_MAPPING",
    "FORMATS",
    "PREFETCH_MIN_BYTES",
    "READERS",
    "EventKind",
    "ReadStats",
    "ResourceMapping",
    "SyntheticTrace",
    "TaskEvent",
    "TraceError",
    "TraceReader",
    "Workload",
    "arrival_times",
    "generate",
    "open_text",
    "prefetched",
    "read_alibaba2018",
    "read_azure2019",
    "read_batch_task",
    "read_borg2011",
    "read_borg2019",
    "read_container_meta",
    "read_trace",
    "reader_for",
]
