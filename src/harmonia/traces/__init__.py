"""Workload traces: streaming readers of public cluster-trace formats and synthetic
generators that write them, all yielding :class:`~harmonia.traces.events.TaskEvent`.

Readers never hold a whole trace in memory. Imports only :mod:`harmonia.model`.
"""

from harmonia.traces.events import EventKind, TaskEvent, TraceError

__all__ = ["EventKind", "TaskEvent", "TraceError"]
