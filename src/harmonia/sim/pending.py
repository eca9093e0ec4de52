"""The pending queue: tasks that fit no node yet, grouped by request, FIFO per group.

Used by :class:`harmonia.sim.simulator.Simulation`, whose docstring explains the retry
rule this structure serves: when capacity frees on one node, only groups whose request
fits that node's free amounts are retried, each from its head. Group keys are kept
sorted (CPU first), so finding the candidates is a bisection plus a scan of the groups
small enough in CPU.

Entries leave lazily: a task that ends or moves to another group while pending stays in
its old deque until it reaches the head, where ``waiting(task, key)`` tells it apart;
:attr:`count` is kept exact by the caller's :meth:`forget`.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from harmonia.sim.requests import RequestKey

T = TypeVar("T")


class PendingQueue(Generic[T]):
    def __init__(self, waiting: Callable[[T, RequestKey], bool]) -> None:
        self.count = 0  # tasks waiting, exact
        self._waiting = waiting
        self._groups: dict[RequestKey, deque[T]] = {}
        self._keys: list[RequestKey] = []

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def keys(self) -> Iterator[RequestKey]:
        return iter(self._groups)

    def join(self, task: T, key: RequestKey) -> bool:
        """Append ``task`` to its group if the group has entries; whether it did."""
        group = self._groups.get(key)
        if not group:
            return False
        group.append(task)
        self.count += 1
        return True

    def push(self, task: T, key: RequestKey) -> None:
        group = self._groups.get(key)
        if group is None:
            group = deque()
            self._groups[key] = group
            insort(self._keys, key)
        group.append(task)
        self.count += 1

    def forget(self) -> None:
        """One waiting task left without passing the head (it ended or moved)."""
        self.count -= 1

    def candidates(self, free_cpu: int, free_memory: int) -> list[RequestKey]:
        """Keys of the groups whose request fits ``free_cpu`` and ``free_memory``."""
        keys = self._keys
        limit = bisect_left(keys, (free_cpu + 1,))
        return [key for key in keys[:limit] if key[1] <= free_memory]

    def head(self, key: RequestKey) -> T | None:
        """The group's first waiting task (dropping entries that left); ``None`` when
        the group is empty, which removes it."""
        group = self._groups.get(key)
        if group is None:
            return None
        waiting = self._waiting
        while group:
            task = group[0]
            if waiting(task, key):
                return task
            group.popleft()
        self._remove(key)
        return None

    def pop_head(self, key: RequestKey) -> None:
        """The head was placed: it leaves the queue."""
        group = self._groups[key]
        group.popleft()
        self.count -= 1
        if not group:
            self._remove(key)

    def _remove(self, key: RequestKey) -> None:
        del self._groups[key]
        del self._keys[bisect_left(self._keys, key)]
