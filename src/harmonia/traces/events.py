"""The typed events every trace reader yields and the simulator consumes.

One event is one change in one task's life, at a time in seconds from the start of the
trace. Readers map each format's own fields onto this: Google's Borg traces (2011 and
2019), Alibaba's 2018 trace and the Azure Functions 2019 trace. Resource requests are
already mapped from the trace's normalized units to millicores and MiB of the simulated
node classes (see :mod:`harmonia.traces.mapping`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from harmonia.model import FieldError, InputError, QoSClass


class EventKind(StrEnum):
    """What happened to a task (Borg's event types, which the other formats map onto)."""

    SUBMIT = "submit"  # the task wants to run (Borg 0)
    SCHEDULE = "schedule"  # the trace's own scheduler placed it (Borg 1); informational
    EVICT = "evict"  # Borg 2
    FAIL = "fail"  # Borg 3
    FINISH = "finish"  # Borg 4
    KILL = "kill"  # Borg 5
    LOST = "lost"  # Borg 6
    UPDATE = "update"  # Borg 7/8: requests or constraints changed

    @property
    def terminal(self) -> bool:
        """Whether the task's life in the trace ends here."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {EventKind.EVICT, EventKind.FAIL, EventKind.FINISH, EventKind.KILL, EventKind.LOST}
)


@dataclass(frozen=True, slots=True)
class TaskEvent:
    time_s: float
    kind: EventKind
    task: str  # unique within the trace, e.g. "<job>.<index>"
    job: str = ""
    qos_class: QoSClass = QoSClass.BE
    priority: int = 0
    cpu_m: int = 0
    memory_mib: int = 0
    disk_mib: int = 0
    # Known run time for formats that state it (Alibaba batch tasks, Azure invocations);
    # None when the run ends at a later terminal event of the same task.
    duration_s: float | None = None
    # Borg's "different machines restriction": no two tasks of the job on one node.
    spread_job: bool = False


class TraceError(InputError):
    """A trace line is malformed; names the file and line."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__([FieldError(f"line {line}", message)], source)
        self.line = line
