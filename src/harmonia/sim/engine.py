"""The discrete-event engine: one heap of ``(time, priority, sequence, kind, payload)``.

The simulator (:mod:`harmonia.sim.simulator`) registers one handler per event kind,
schedules its own events (task ends, node failures and recoveries, time steps) and hands
the trace to :meth:`Engine.run` as a *source*: an iterator of ``(time, payload)`` pairs
already sorted by time, merged lazily with the heap so a trace of millions of events
never sits in it.

Order. Events run by time, then by priority (lower first), then in the order they were
scheduled: the sequence counter breaks every remaining tie, so the same inputs always
run in the same order. A source item counts as an event of ``source_priority``; on a full
tie of time and priority, heap events run before it.

Simulated time only: the engine never reads a clock and never sleeps.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator
from typing import Any

from harmonia.model import HarmoniaError

Handler = Callable[[float, Any], None]


class EngineError(HarmoniaError):
    """An event scheduled in the past, or a kind without a handler."""


class Engine:
    """A deterministic event loop over simulated seconds."""

    __slots__ = ("_handlers", "_heap", "_held", "_seq", "now", "processed", "stopped")

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)
        self._heap: list[tuple[float, int, int, int, Any]] = []
        self._seq = 0
        self._handlers: list[Handler | None] = []
        self.processed = 0
        self.stopped = False
        # A source item beyond the last ``until``, with its source, kept for the next run.
        self._held: tuple[Iterator[tuple[float, Any]], tuple[float, Any]] | None = None

    def register(self, kind: int, handler: Handler) -> None:
        """Call ``handler(time, payload)`` for events of ``kind`` (a small int)."""
        if kind < 0:
            raise EngineError(f"event kind must be >= 0, got {kind}")
        while len(self._handlers) <= kind:
            self._handlers.append(None)
        self._handlers[kind] = handler

    def schedule(self, time: float, priority: int, kind: int, payload: Any = None) -> None:
        """Add an event; ``time`` must not be before :attr:`now`."""
        if time < self.now:
            raise EngineError(f"event of kind {kind} at {time} is before now ({self.now})")
        if kind >= len(self._handlers) or self._handlers[kind] is None:
            raise EngineError(f"no handler for event kind {kind}")
        self._seq += 1
        heapq.heappush(self._heap, (time, priority, self._seq, kind, payload))

    def __len__(self) -> int:
        return len(self._heap)

    def peek(self) -> tuple[float, int] | None:
        """(time, priority) of the next heap event, or ``None`` when the heap is empty."""
        if not self._heap:
            return None
        head = self._heap[0]
        return head[0], head[1]

    def stop(self) -> None:
        """Make the running :meth:`run` return after the current event."""
        self.stopped = True

    def run(
        self,
        until: float = math.inf,
        *,
        source: Iterator[tuple[float, Any]] | None = None,
        source_kind: int = 0,
        source_priority: int = 0,
    ) -> bool:
        """Process events with time <= ``until``; afterwards :attr:`now` is ``until`` if
        finite (else the last event's time).

        With ``source``, its items are merged in as events of ``source_kind`` and
        ``source_priority``; an item before :attr:`now` runs at :attr:`now` (a trace out of
        order by a little is clamped, never reordered). The call returns right after the
        source's last item, leaving later heap events for the next call, and consumes
        the source only up to ``until``: the first item beyond it is kept and merged by
        the next call with the same source. Returns ``True`` when the source is exhausted
        (or there was none).
        """
        self.stopped = False
        heap, handlers = self._heap, self._handlers
        pop = heapq.heappop
        pending: tuple[float, Any] | None = None
        source_handler: Handler | None = None
        if source is not None:
            source_handler = handlers[source_kind] if source_kind < len(handlers) else None
            if source_handler is None:
                raise EngineError(f"no handler for source kind {source_kind}")
            pending = self._source_head(source)
            if pending is None:
                return True
        # NOTE: the merge loop is written out (no helper calls per event); it runs once per
        # trace event and once per internal event.
        while not self.stopped:
            if pending is not None:
                t_src = pending[0]
                if heap:
                    head = heap[0]
                    t_heap = head[0]
                    heap_first = t_heap < t_src or (t_heap == t_src and head[1] <= source_priority)
                else:
                    heap_first = False
                if not heap_first:
                    if t_src > until:
                        break
                    if t_src > self.now:
                        self.now = t_src
                    self.processed += 1
                    source_handler(self.now, pending[1])  # type: ignore[misc]
                    pending = next(source, None)  # type: ignore[arg-type]
                    if pending is None:
                        return True
                    continue
            elif not heap:
                break
            head = heap[0]
            if head[0] > until:
                break
            pop(heap)
            self.now = head[0]
            self.processed += 1
            handler = handlers[head[3]]
            handler(head[0], head[4])  # type: ignore[misc]
        if source is not None and pending is not None:
            self._held = (source, pending)
        if until != math.inf and not self.stopped and until > self.now:
            self.now = until
        return pending is None

    def _source_head(self, source: Iterator[tuple[float, Any]]) -> tuple[float, Any] | None:
        held = self._held
        if held is not None and held[0] is source:
            self._held = None
            return held[1]
        return next(source, None)
