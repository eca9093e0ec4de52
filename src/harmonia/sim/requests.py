"""From trace events to placement requests: quantization, minimums, job spreading, and
interning, so that tasks with equal requests share one ``PlacementRequest``.

Used by :class:`harmonia.sim.simulator.Simulation` for every SUBMIT and UPDATE. A
request's *key* ``(cpu_m, memory_mib, storage_mib, service, qos, priority)`` also names
the pending group its tasks wait in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import numpy.typing as npt

from harmonia.model import AntiAffinityConstraint, PlacementRequest, QoSClass
from harmonia.sched.state import request_vector
from harmonia.sim.scenario import RequestConfig
from harmonia.traces.events import TaskEvent

RequestKey = tuple[int, int, int, str, str, int]
INTERNED_LIMIT = 1 << 16  # interned requests kept before unused ones are pruned

_QOS_VALUES: dict[QoSClass, str] = {qos: qos.value for qos in QoSClass}


class RequestBook:
    """Interned requests by key, each with its resource vector (see the module doc).

    NOTE: interning saves building and storing a pydantic model per task (about 1.5 KB
    and 5 µs each); requests are immutable and the simulator tracks task identity
    itself, so the request id names the shape, not the task. At most
    :data:`INTERNED_LIMIT` are kept: beyond that, those no live task uses are dropped.
    """

    def __init__(self, config: RequestConfig) -> None:
        self.config = config
        self.quanta = (
            (config.cpu_quantum_m, config.memory_quantum_mib, config.disk_quantum_mib)
            if config.quantize
            else (1, 1, 1)
        )
        self._requests: dict[RequestKey, tuple[PlacementRequest, npt.NDArray[np.int64]]] = {}
        # Key per raw event fields, so a repeated request skips the arithmetic.
        self._raw: dict[tuple[Any, ...], RequestKey] = {}
        # One validated constraint shared by every spread job's request (immutable).
        self._spread: tuple[AntiAffinityConstraint, ...] = (
            (AntiAffinityConstraint(scope="node", max_per_domain=1),)
            if config.spread_job == "hard"
            else ()
        )

    def __len__(self) -> int:
        return len(self._requests)

    def key_of(
        self,
        ev: TaskEvent,
        in_use: Callable[[], Collection[RequestKey]],
        service: str | None = None,
    ) -> RequestKey:
        """The key of ``ev``'s request, interning the request the first time.

        ``service`` overrides the service derived from the event (an UPDATE keeps the
        task's); ``in_use`` names the keys to keep when pruning.
        """
        if service is not None:
            return self._intern(ev, service, in_use)
        raw = (
            ev.cpu_m,
            ev.memory_mib,
            ev.disk_mib,
            ev.job if ev.spread_job else "",
            ev.qos_class,
            ev.priority,
        )
        cached = self._raw.get(raw)
        if cached is not None:
            return cached
        interned = self._intern(ev, self.service_for(ev), in_use)
        if len(self._raw) >= INTERNED_LIMIT:
            self._raw.clear()
        self._raw[raw] = interned
        return interned

    def _intern(
        self, ev: TaskEvent, service: str, in_use: Callable[[], Collection[RequestKey]]
    ) -> RequestKey:
        config = self.config
        q_cpu, q_mem, q_disk = self.quanta
        cpu = max(-(-ev.cpu_m // q_cpu) * q_cpu, config.min_cpu_m)
        mem = max(-(-ev.memory_mib // q_mem) * q_mem, config.min_memory_mib)
        disk = -(-ev.disk_mib // q_disk) * q_disk if config.disk else 0
        qos = ev.qos_class
        # NOTE: ``QoSClass.value`` is an enum descriptor costing ~0.5 µs a read; the
        # table costs a dict lookup.
        key: RequestKey = (cpu, mem, disk, service, _QOS_VALUES[qos], ev.priority)
        if key not in self._requests:
            request = self._request(key, qos)
            if len(self._requests) >= INTERNED_LIMIT:
                self._prune(set(in_use()))
            self._requests[key] = (request, request_vector(request))
        return key

    def _request(self, key: RequestKey, qos: QoSClass) -> PlacementRequest:
        """A new interned request for ``key``, validated like any other input.

        NOTE: ``PlacementRequest.model_construct`` would skip validation but is
        implemented in Python and costs about five times what validation does; the
        saving here is the constraint, validated once and shared (models are frozen).
        """
        cpu, mem, disk, service, qos_value, priority = key
        name = f"{service or 'task'}:{cpu}m:{mem}Mi" + (f":{disk}Mi-disk" if disk else "")
        return PlacementRequest(
            id=f"{name}:{qos_value}:p{priority}",
            service=service,
            qos_class=qos,
            priority=priority,
            cpu_m=cpu,
            memory_mib=mem,
            storage_mib=disk,
            constraints=self._spread if service else (),
        )

    def __getitem__(self, key: RequestKey) -> tuple[PlacementRequest, npt.NDArray[np.int64]]:
        return self._requests[key]

    def service_for(self, ev: TaskEvent) -> str:
        """The job as the request's service, for Borg's different-machines restriction."""
        mode = self.config.spread_job
        return ev.job if ev.spread_job and mode != "ignore" and ev.job else ""

    def _prune(self, used: set[RequestKey]) -> None:
        self._requests = {k: v for k, v in self._requests.items() if k in used}
        self._raw.clear()
