"""One task life as the simulator tracks it (see :mod:`harmonia.sim.simulator` for what
a life is and how it ends).

Used by :class:`harmonia.sim.simulator.Simulation`, which creates one :class:`TaskLife`
per SUBMIT and keeps it while the task runs or waits; the pending queue holds the same
objects and asks :func:`waiting` whether an entry still stands for a waiting task.
"""

from __future__ import annotations

from typing import Any

from harmonia.model import PlacementRequest
from harmonia.sim.requests import RequestKey
from harmonia.traces.events import EventKind

PENDING, RUNNING, DONE = 0, 1, 2


class TaskLife:
    """One task life. NOTE: a slots class rather than a dataclass; one exists per live task."""

    __slots__ = (
        "duration",
        "end_t",
        "group",
        "key",
        "lc",
        "node",
        "outcome",
        "placed",
        "request",
        "resolved",
        "run",
        "start_t",
        "state",
        "submit_t",
        "trace_start",
        "vector",
    )

    def __init__(
        self, key: str, group: RequestKey, request: PlacementRequest, vector: Any, now: float
    ) -> None:
        self.key = key
        self.group = group
        self.request = request
        self.vector = vector
        self.submit_t = now
        self.trace_start: float | None = None
        self.start_t = 0.0
        self.node = -1
        self.duration: float | None = None
        self.end_t: float | None = None  # time of the scheduled end event, while running
        self.outcome = EventKind.FINISH
        self.run = 0  # placements so far; an end event carries the run it belongs to
        self.state = PENDING
        self.placed = False
        self.resolved = False  # the trace's terminal event for this life has arrived
        self.lc: str | None = None


def waiting(task: TaskLife, key: RequestKey) -> bool:
    """Whether a queue entry under ``key`` still stands for a waiting task."""
    return task.state == PENDING and task.group == key
